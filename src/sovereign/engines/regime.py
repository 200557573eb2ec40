"""Market regime from a Gaussian HMM, with causal (filtered) confidence.

Pipeline, for one return series (a symbol, or a universe's equal-weight market return):

1. :func:`regime_observations` / :func:`observations_from_returns` turn it into an
   ``(n_bars, 2)`` matrix ``[log return, rolling volatility]``.
2. :func:`fit_hmm` fits a diagonal-covariance :class:`hmmlearn.hmm.GaussianHMM` on standardised
   observations with several seeded restarts and names each hidden state with a :class:`Regime`
   (:func:`label_states`).
3. :func:`forward_filter` runs the forward algorithm in log space, written here rather than
   taken from hmmlearn, so the posterior at bar ``t`` uses observations ``<= t`` only.
   (hmmlearn's ``predict_proba`` is forward-backward smoothed and looks ahead: never used here.)
4. :class:`RegimeEngine` walks forward, refitting on a schedule on the past only, and
   :class:`RegimeFilter` is the incremental one-bar-at-a-time form for live use.

Why ``covariance_type="diag"``: the two features are a return and a 20-bar volatility level.
Within a regime their correlation is weak and is not what separates regimes; the diagonal model
has fewer parameters per state, converges in fewer EM iterations, is faster, and cannot produce
the near-singular covariance a full model fits to a calm state whose volatility barely moves.

Missing data: an observation row with a NaN (the volatility warm-up, a bar with no return) is a
missing observation. Fitting skips it; filtering makes a prediction step only (the emission
likelihood is 1), so outputs stay finite. Infinite values raise :class:`DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hmmlearn.hmm import GaussianHMM

from sovereign.engines.indicators import log_returns, rolling_volatility
from sovereign.errors import DataError
from sovereign.rules.context import Regime

__all__ = [
    "REGIME_ORDER",
    "FilterResult",
    "RegimeEngine",
    "RegimeFilter",
    "RegimeModel",
    "RegimePath",
    "RegimeState",
    "fit_hmm",
    "forward_filter",
    "label_states",
    "market_returns",
    "observations_from_returns",
    "regime_observations",
]

#: Order of the labelled regimes in every probability vector this module returns.
REGIME_ORDER: tuple[Regime, ...] = (
    Regime.TRENDING_UP,
    Regime.TRENDING_DOWN,
    Regime.RANGING,
    Regime.VOLATILE,
)
_MIN_ROWS_PER_STATE = 20  # fewer finite training rows per hidden state than this: refuse to fit
_LOG_2PI = float(np.log(2.0 * np.pi))


# ---------------------------------------------------------------------------------- observations


def market_returns(close_2d: np.ndarray) -> np.ndarray:
    """Equal-weight market log return per bar: the mean over symbols of their log returns.

    ``close_2d``: ndarray (n_bars, n_symbols), prices > 0, NaN where a symbol has no bar.
    Returns ndarray (n_bars,): NaN symbols are ignored; a bar where no symbol has a return
    (row 0 always) is NaN.
    """
    close = np.asarray(close_2d, dtype=np.float64)
    if close.ndim != 2:
        raise DataError(f"expected closes of shape (n_bars, n_symbols), got {close.shape}")
    rets = log_returns(close)
    valid = ~np.isnan(rets)
    count = valid.sum(axis=1)
    total = np.where(valid, rets, 0.0).sum(axis=1)
    out = np.full(close.shape[0], np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def observations_from_returns(returns_1d: np.ndarray, vol_window: int = 20) -> np.ndarray:
    """HMM observations from a return series.

    ``returns_1d``: ndarray (n_bars,), log returns per bar (NaN allowed where missing).
    Returns ndarray (n_bars, 2): column 0 the log return, column 1 its rolling std over the last
    ``vol_window`` bars (per bar, not annualised). Rows before the window is complete are NaN
    (missing observations). Raises DataError on a non-1-D input or an infinite value.
    """
    r = np.asarray(returns_1d, dtype=np.float64)
    if r.ndim != 1:
        raise DataError(f"expected a 1-D return series, got shape {r.shape}")
    if np.isinf(r).any():
        raise DataError("return series contains an infinite value")
    return np.column_stack([r, rolling_volatility(r, vol_window)])


def regime_observations(close_1d: np.ndarray, vol_window: int = 20) -> np.ndarray:
    """HMM observations ``[log return, rolling volatility]`` from a close series.

    ``close_1d``: ndarray (n_bars,), prices > 0. Returns ndarray (n_bars, 2); see
    :func:`observations_from_returns`.
    """
    close = np.asarray(close_1d, dtype=np.float64)
    if close.ndim != 1:
        raise DataError(f"expected a 1-D close series, got shape {close.shape}")
    return observations_from_returns(log_returns(close), vol_window)


# ---------------------------------------------------------------------------------------- model


def label_states(mean_return: np.ndarray, return_variance: np.ndarray) -> tuple[Regime, ...]:
    """Name each hidden state from its mean return and return variance (raw units).

    The highest-variance state is VOLATILE. Of the others, the highest mean is TRENDING_UP and
    the lowest TRENDING_DOWN; every remaining state is RANGING. Ties go to the lower state index.
    For ``n_states == 4`` that is one state per label. With 3 states there is no RANGING; with
    2, the calm state is TRENDING_UP if its mean return is >= 0, else TRENDING_DOWN; with 5 or
    more, several states are RANGING and their probabilities are summed.
    """
    mean = np.asarray(mean_return, dtype=np.float64)
    var = np.asarray(return_variance, dtype=np.float64)
    k = mean.shape[0]
    if k < 2:
        raise ValueError("need at least 2 states to label")
    labels = [Regime.RANGING] * k
    volatile = int(np.argmax(var))  # argmax returns the first (lowest) index on ties
    labels[volatile] = Regime.VOLATILE
    rest = [i for i in range(k) if i != volatile]
    if len(rest) == 1:
        only = rest[0]
        labels[only] = Regime.TRENDING_UP if mean[only] >= 0 else Regime.TRENDING_DOWN
        return tuple(labels)
    up = min(rest, key=lambda i: (-mean[i], i))
    down = min((i for i in rest if i != up), key=lambda i: (mean[i], i))
    labels[up] = Regime.TRENDING_UP
    labels[down] = Regime.TRENDING_DOWN
    return tuple(labels)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class RegimeModel:
    """A fitted HMM and everything needed to filter with it.

    The HMM lives in standardised units: ``z = (x - center) / scale`` with the training window's
    per-column mean and std. ``means``/``variances``: (n_states, 2) in those units (diagonal
    covariances). ``startprob``: (n_states,). ``transmat``: (n_states, n_states), rows sum to 1.
    ``labels``: the Regime of each state. ``log_likelihood``: of the training data under the
    model, in standardised units. ``hmm``: the fitted hmmlearn object (for independent checks).
    """

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    labels: tuple[Regime, ...]
    log_likelihood: float
    n_train: int
    seed: int
    hmm: GaussianHMM

    @property
    def n_states(self) -> int:
        return int(self.startprob.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw observations (n, 2) -> standardised (n, 2), the units the HMM was fitted in."""
        z: np.ndarray = (np.asarray(x, dtype=np.float64) - self.center) / self.scale
        return z

    def log_emissions(self, x: np.ndarray) -> np.ndarray:
        """Log density of each raw observation row under each state: (n, 2) -> (n, n_states).

        Diagonal Gaussian densities of the standardised row. A row with a NaN is a missing
        observation and gets 0 (likelihood 1) in every state.
        """
        z = self.transform(np.atleast_2d(x))
        diff = z[:, None, :] - self.means[None, :, :]
        quad = (diff * diff / self.variances[None, :, :]).sum(axis=2)
        log_norm = -0.5 * (z.shape[1] * _LOG_2PI + np.log(self.variances).sum(axis=1))
        out: np.ndarray = log_norm[None, :] - 0.5 * quad
        out[np.isnan(z).any(axis=1)] = 0.0
        return out

    def label_matrix(self) -> np.ndarray:
        """(n_states, 4) 0/1 matrix mapping states to :data:`REGIME_ORDER`."""
        m = np.zeros((self.n_states, len(REGIME_ORDER)))
        for i, label in enumerate(self.labels):
            m[i, REGIME_ORDER.index(label)] = 1.0
        return m


def _validate_training(x: np.ndarray, n_states: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DataError(f"expected observations of shape (n_obs, n_features), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError("observations contain NaN or inf; drop missing rows before fitting")
    need = _MIN_ROWS_PER_STATE * n_states
    if arr.shape[0] < need:
        raise DataError(f"{arr.shape[0]} observations are too few to fit {n_states} states")
    spread = arr.std(axis=0)
    if (spread <= 1e-12 * np.maximum(1.0, np.abs(arr).max(axis=0))).any():
        raise DataError("observations are constant in some column: no regimes to find")
    return arr


def _volatility_seeds(z: np.ndarray, k: int, rng: np.random.Generator | None) -> np.ndarray:
    """Initial means: rows of ``z`` (n, d) sorted by the volatility column (the last), cut into
    ``k`` consecutive groups, each group's mean. Equal groups without ``rng``; Dirichlet-sized
    groups with it (the later restarts).

    Regimes differ above all in volatility, so this starts EM in the right basin. k-means++ or
    hmmlearn's KMeans start often splits the volatile regime in two and merges the calm ones,
    with a log-likelihood far below; KMeans also costs more than the EM itself.
    """
    order = np.argsort(z[:, -1], kind="stable")
    n = z.shape[0]
    if rng is None:
        cuts = np.linspace(0, n, k + 1)[1:-1]
    else:
        cuts = np.cumsum(rng.dirichlet(np.full(k, 5.0)))[:-1] * n
    bounds = np.round(cuts).astype(int)
    for i in range(k - 1):  # every group keeps at least one row
        low = bounds[i - 1] + 1 if i else 1
        bounds[i] = min(max(int(bounds[i]), low), n - (k - 1 - i))
    return np.array([z[group].mean(axis=0) for group in np.split(order, bounds)])


def fit_hmm(
    x: np.ndarray,
    *,
    n_states: int = 4,
    n_restarts: int = 3,
    seed: int,
    n_iter: int = 100,
    tol: float = 1e-4,
) -> RegimeModel:
    """Fit a diagonal Gaussian HMM with ``n_restarts`` seeded restarts; keep the best.

    ``x``: ndarray (n_obs, n_features), finite (raw units, e.g. from
    :func:`regime_observations` with the NaN rows dropped). It is standardised with its own
    column mean/std first. Each restart starts from means taken along the volatility ordering
    (:func:`_volatility_seeds`; equal groups first, random group sizes after) and a sticky
    random transition matrix (0.9 on the diagonal plus Dirichlet noise), then runs EM for at
    most ``n_iter`` iterations or until the log-likelihood gains less than ``tol`` PER
    OBSERVATION in an iteration (hmmlearn's absolute ``tol`` is set to ``tol * n_obs``, so the
    stopping rule does not tighten as the training window grows). The restart with the highest
    training log-likelihood wins. The same ``seed`` gives the same model.

    Raises DataError on non-finite, too short (< 20 rows per state) or constant input, or when
    every restart fails.
    """
    if n_states < 2:
        raise ValueError("n_states must be >= 2")
    if n_restarts < 1:
        raise ValueError("n_restarts must be >= 1")
    arr = _validate_training(x, n_states)
    center = arr.mean(axis=0)
    scale = arr.std(axis=0)
    z = (arr - center) / scale
    best: GaussianHMM | None = None
    best_ll = -np.inf
    best_seed = 0
    for restart, child in enumerate(np.random.SeedSequence(seed).generate_state(n_restarts)):
        restart_seed = int(child)
        rng = np.random.default_rng(restart_seed)
        hmm = GaussianHMM(
            n_components=n_states,
            covariance_type="diag",
            n_iter=n_iter,
            tol=tol * arr.shape[0],
            random_state=restart_seed,
            init_params="c",
            implementation="scaling",
            params="stmc",
        )
        hmm.means_ = _volatility_seeds(z, n_states, rng if restart else None)
        hmm.startprob_ = np.full(n_states, 1.0 / n_states)
        transmat = 0.9 * np.eye(n_states) + 0.1 * rng.dirichlet(np.ones(n_states), size=n_states)
        hmm.transmat_ = transmat / transmat.sum(axis=1, keepdims=True)
        try:
            hmm.fit(z)
            ll = float(hmm.score(z))
        except (ValueError, np.linalg.LinAlgError):
            continue  # a degenerate restart; the others may still succeed
        if np.isfinite(ll) and ll > best_ll:
            best, best_ll, best_seed = hmm, ll, restart_seed
    if best is None:
        raise DataError(f"all {n_restarts} HMM restarts failed to fit")
    variances = np.diagonal(best.covars_, axis1=1, axis2=2).copy()
    means = np.asarray(best.means_, dtype=np.float64).copy()
    labels = label_states(means[:, 0] * scale[0] + center[0], variances[:, 0] * scale[0] ** 2)
    return RegimeModel(
        startprob=np.asarray(best.startprob_, dtype=np.float64).copy(),
        transmat=np.asarray(best.transmat_, dtype=np.float64).copy(),
        means=means,
        variances=variances,
        center=center,
        scale=scale,
        labels=labels,
        log_likelihood=best_ll,
        n_train=int(arr.shape[0]),
        seed=best_seed,
        hmm=best,
    )


# ---------------------------------------------------------------------------------- filtering


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class FilterResult:
    """Output of :func:`forward_filter`.

    ``posteriors``: (n, n_states), ``P(state_t | obs_0..t)``. ``log_likelihood``: log
    ``P(obs_0..n-1)`` in the model's standardised units (equals hmmlearn's ``score`` on the
    same standardised rows). ``log_state``: log posterior at the last row, (n_states,), to
    continue filtering from.
    """

    posteriors: np.ndarray
    log_likelihood: float
    log_state: np.ndarray


def _forward_batch(
    log_b: np.ndarray,
    log_start: np.ndarray,
    transmat: np.ndarray,
    log_state: np.ndarray | None,
    ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward recursion for B models at once, in log space.

    ``log_b``: (B, n, k) log emissions; ``log_start``: (B, k); ``transmat``: (B, k, k);
    ``log_state``: (B, k) log posterior before row 0, or None to start from ``startprob``;
    ``ends``: (B,) non-decreasing, model b runs on rows ``[0, ends[b])``.
    Returns (log posteriors (B, n, k), log-likelihoods (B,), last log states (B, k)).
    """
    n_models, n, k = log_b.shape
    post = np.zeros((n_models, n, k))
    loglik = np.zeros(n_models)
    state = np.empty((n_models, k))
    cur = None if log_state is None else log_state.copy()
    first = 0  # models [first, B) are still running; ends are sorted, so they drop from the front
    with np.errstate(divide="ignore"):  # log(0) = -inf for an impossible transition is fine
        for t in range(n):
            while first < n_models and ends[first] <= t:
                state[first] = cur[first] if cur is not None else log_start[first]
                first += 1
            if first == n_models:
                break
            if cur is None:
                pred = log_start[first:]
            else:
                # log sum_i exp(log f_i) A_ij, with the max pulled out for stability
                top = cur[first:].max(axis=1, keepdims=True)
                mix = np.matmul(np.exp(cur[first:] - top)[:, None, :], transmat[first:])[:, 0]
                pred = top + np.log(mix)
            joint = pred + log_b[first:, t]
            peak = joint.max(axis=1, keepdims=True)
            norm = peak + np.log(np.exp(joint - peak).sum(axis=1, keepdims=True))
            if cur is None:
                cur = np.zeros((n_models, k))
            cur[first:] = joint - norm
            post[first:, t] = cur[first:]
            loglik[first:] += norm[:, 0]
    for b in range(first, n_models):
        state[b] = cur[b] if cur is not None else log_start[b]
    return post, loglik, state


def forward_filter(
    model: RegimeModel, x: np.ndarray, *, log_state: np.ndarray | None = None
) -> FilterResult:
    """Filtered state posteriors of raw observations ``x`` (n, 2) under ``model``.

    The forward algorithm in log space, ``O(n * k^2)``: row ``t``'s posterior depends on rows
    ``<= t`` only, so appending rows never changes earlier ones. ``log_state`` (n_states,)
    continues from a previous :class:`FilterResult`; without it the chain starts from the
    model's ``startprob``. NaN rows are missing observations (prediction step only).
    """
    log_b = model.log_emissions(x)[None]
    with np.errstate(divide="ignore"):
        log_start = np.log(model.startprob)[None]
    start = None if log_state is None else np.asarray(log_state, dtype=np.float64)[None]
    post, loglik, state = _forward_batch(
        log_b, log_start, model.transmat[None], start, np.array([log_b.shape[1]])
    )
    return FilterResult(
        posteriors=np.exp(post[0]), log_likelihood=float(loglik[0]), log_state=state[0]
    )


# -------------------------------------------------------------------------------------- states


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeState:
    """The regime at one bar.

    ``confidence``: the largest filtered probability of a labelled regime (states sharing a
    label are summed), in [0, 1]. ``probabilities``: ``(regime, probability)`` for each of
    :data:`REGIME_ORDER`, summing to 1 (all 0 before any model exists). ``raw_regime``: the most
    probable label; ``regime`` is that label, or UNCERTAIN when confidence < the threshold.
    """

    regime: Regime
    raw_regime: Regime
    confidence: float
    probabilities: tuple[tuple[Regime, float], ...]

    def __post_init__(self) -> None:
        if not (0.0 <= self.confidence <= 1.0):
            raise DataError(f"regime confidence {self.confidence!r} is not in [0, 1]")

    def probability(self, regime: Regime) -> float:
        return dict(self.probabilities).get(regime, 0.0)


def _label_probs(post: np.ndarray, model: RegimeModel) -> np.ndarray:
    """(n, n_states) state posteriors -> (n, 4) label probabilities in REGIME_ORDER."""
    probs: np.ndarray = post @ model.label_matrix()
    return probs


def _decide(probs: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 4) label probabilities -> (regime, raw regime) object arrays and confidence (n,)."""
    labels = np.array(REGIME_ORDER, dtype=object)
    best = probs.argmax(axis=1)  # ties go to the earlier label in REGIME_ORDER
    conf = np.clip(probs[np.arange(probs.shape[0]), best], 0.0, 1.0)
    raw = labels[best]
    regime = np.where(conf >= min_confidence, raw, Regime.UNCERTAIN)
    return regime.astype(object), raw.astype(object), conf


def _state(probs_row: np.ndarray, min_confidence: float) -> RegimeState:
    regime, raw, conf = _decide(probs_row[None], min_confidence)
    return RegimeState(
        regime=regime[0],
        raw_regime=raw[0],
        confidence=float(conf[0]),
        probabilities=tuple((r, float(p)) for r, p in zip(REGIME_ORDER, probs_row, strict=True)),
    )


class RegimeFilter:
    """Incremental filter for live use: one observation in, one :class:`RegimeState` out.

    ``model``: a fitted :class:`RegimeModel`. ``history``: optional raw observations (n, 2) that
    precede the first :meth:`update` (the model's training window, as :class:`RegimeEngine`
    does); they set the filter's state. Each update costs ``O(n_states^2)``.
    """

    def __init__(
        self,
        model: RegimeModel,
        *,
        min_confidence: float = 0.6,
        history: np.ndarray | None = None,
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence must be in [0, 1]")
        self.model = model
        self.min_confidence = min_confidence
        self._log_state: np.ndarray | None = None
        with np.errstate(divide="ignore"):
            self._log_start = np.log(model.startprob)
        self._labels = model.label_matrix()
        if history is not None and len(history) > 0:
            self._log_state = forward_filter(model, history).log_state

    def update(self, x_t: np.ndarray) -> RegimeState:
        """Filter one raw observation ``x_t`` (shape (2,), NaN = missing) -> RegimeState."""
        log_b = self.model.log_emissions(np.asarray(x_t, dtype=np.float64).reshape(1, -1))[0]
        with np.errstate(divide="ignore"):
            if self._log_state is None:
                pred = self._log_start
            else:
                top = self._log_state.max()
                pred = top + np.log(np.exp(self._log_state - top) @ self.model.transmat)
        joint = pred + log_b
        peak = joint.max()
        self._log_state = joint - (peak + np.log(np.exp(joint - peak).sum()))
        return _state(np.exp(self._log_state) @ self._labels, self.min_confidence)


# ------------------------------------------------------------------------------- walk forward


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class RegimePath:
    """Walk-forward regimes of a series.

    ``regime``/``raw_regime``: object ndarray (n_bars,) of Regime. ``confidence``: float64
    (n_bars,) in [0, 1], 0 before the first model. ``probabilities``: float64 (n_bars, 4) in
    :data:`REGIME_ORDER`, zeros before the first model. ``refit_bars``: bar index of each fit;
    model ``k`` (``models[k]``) was fitted on bars ``< refit_bars[k]`` and labels bars
    ``refit_bars[k] .. refit_bars[k + 1] - 1``.
    """

    regime: np.ndarray
    raw_regime: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    refit_bars: tuple[int, ...]
    models: tuple[RegimeModel, ...]

    def state(self, t: int) -> RegimeState:
        """The RegimeState at bar ``t``."""
        return RegimeState(
            regime=self.regime[t],
            raw_regime=self.raw_regime[t],
            confidence=float(self.confidence[t]),
            probabilities=tuple(
                (r, float(p)) for r, p in zip(REGIME_ORDER, self.probabilities[t], strict=True)
            ),
        )


class RegimeEngine:
    """Walk-forward HMM regimes: refit on a schedule on the past only, filter forward.

    Refits happen at bars ``min_history, min_history + refit_every, ...``; the model for bar
    ``t_k`` is fitted on observations ``[0, t_k)`` (expanding window) with seed derived from
    ``(seed, t_k)``, so a truncated series gets exactly the same models. Its filter is warmed up
    over the training window and then labels bars ``t_k .. t_{k+1} - 1``. Bars before
    ``min_history`` are UNCERTAIN with confidence 0.
    """

    def __init__(
        self,
        *,
        n_states: int = 4,
        n_restarts: int = 3,
        refit_every: int = 252,
        min_history: int = 504,
        min_confidence: float = 0.6,
        vol_window: int = 20,
        n_iter: int = 100,
        tol: float = 1e-4,
        seed: int,
    ) -> None:
        if refit_every < 1:
            raise ValueError("refit_every must be >= 1")
        if min_history <= vol_window:
            raise ValueError("min_history must exceed vol_window")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence must be in [0, 1]")
        self.n_states = n_states
        self.n_restarts = n_restarts
        self.refit_every = refit_every
        self.min_history = min_history
        self.min_confidence = min_confidence
        self.vol_window = vol_window
        self.n_iter = n_iter
        self.tol = tol
        self.seed = seed

    def refit_seed(self, t: int) -> int:
        """Seed of the fit at bar ``t``: a pure function of (engine seed, t)."""
        return int(np.random.SeedSequence([self.seed, t]).generate_state(1)[0])

    def fit_at(self, x: np.ndarray, t: int) -> RegimeModel:
        """The model the engine fits at bar ``t`` from raw observations ``x`` (rows < t used)."""
        train = x[:t]
        train = train[np.isfinite(train).all(axis=1)]
        return fit_hmm(
            train,
            n_states=self.n_states,
            n_restarts=self.n_restarts,
            seed=self.refit_seed(t),
            n_iter=self.n_iter,
            tol=self.tol,
        )

    def run(self, returns_1d: np.ndarray) -> RegimePath:
        """Walk-forward regimes of ``returns_1d`` (n_bars,), log returns per bar.

        A series no longer than ``min_history`` yields an all-UNCERTAIN path with no models.
        Raises DataError when the series has an infinite value, or when a training window is
        degenerate (constant, or too few finite rows).
        """
        x = observations_from_returns(returns_1d, self.vol_window)
        n = x.shape[0]
        refits = tuple(range(self.min_history, n, self.refit_every))
        models = tuple(self.fit_at(x, t) for t in refits)
        probs = np.zeros((n, len(REGIME_ORDER)))
        if models:
            ends = np.array([*refits[1:], n])
            log_b = np.zeros((len(models), n, self.n_states))
            for b, (model, end) in enumerate(zip(models, ends, strict=True)):
                log_b[b, :end] = model.log_emissions(x[:end])
            with np.errstate(divide="ignore"):
                log_start = np.log(np.stack([m.startprob for m in models]))
            transmat = np.stack([m.transmat for m in models])
            post, _, _ = _forward_batch(log_b, log_start, transmat, None, ends)
            for b, (model, start, end) in enumerate(zip(models, refits, ends, strict=True)):
                probs[start:end] = _label_probs(np.exp(post[b, start:end]), model)
        regime, raw, conf = _decide(probs, self.min_confidence)
        unfit = slice(0, min(self.min_history, n))
        regime[unfit] = Regime.UNCERTAIN
        raw[unfit] = Regime.UNCERTAIN
        conf[unfit] = 0.0
        return RegimePath(
            regime=regime,
            raw_regime=raw,
            confidence=conf,
            probabilities=probs,
            refit_bars=refits,
            models=models,
        )
