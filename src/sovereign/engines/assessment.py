"""Assessment: a calibrated probability that a signal has edge, honestly cross-validated.

A signal's label is "its forward return over ``horizon`` bars beat the round-trip cost"
(:func:`edge_labels`). :func:`fit_edge_model` learns ``p(edge | features)`` and says how far to
trust it:

* **Model.** Standardisation + logistic regression (default: few parameters, hard to overfit) or
  a shallow histogram gradient boosting (option), inside scikit-learn's
  ``CalibratedClassifierCV``. Each calibrator is fitted on a later fold than its base model was
  trained on (purged walk-forward splits, :mod:`sovereign.engines.cv`), so calibration is
  out-of-sample; predictions average the fold pairs (``ensemble=True``).
* **Isotonic or Platt.** Isotonic is the better calibrator with plenty of data but overfits
  small calibration sets (Niculescu-Mizil & Caruana 2005: sigmoid wins below roughly a thousand
  samples). A fit uses isotonic when its *smallest* calibration fold has at least
  ``EdgeConfig.isotonic_min_samples`` (1000) samples, sigmoid otherwise.
* **Out-of-fold evaluation.** That whole procedure is re-run inside each outer purged
  walk-forward split, on the past only, and predicts the next fold. The out-of-fold
  probabilities give the Brier score, the Brier score of the base rate (``ybar * (1 - ybar)``
  over the same samples), the skill ``1 - brier / reference`` (> 0: better than always
  predicting the base rate) and a calibration table. The first block only ever trains.
* **One unstable feature.** Per outer fold, seeded permutation importance (increase in Brier
  score when a column is shuffled) on that fold's unseen data. A feature's share is its mean
  absolute importance over folds over the sum for all features. The model is flagged when the
  top share exceeds ``concentration_share`` (0.6) AND that feature is unstable: the coefficient
  of variation of its signed importance across folds exceeds ``concentration_max_cv`` (1.0:
  spread larger than the mean), or its effect on the probability changes sign between folds.

Degenerate input raises :class:`EngineError` (``source="assessment.<function>"``): NaN or
infinite features, labels not 0/1 or of one class, fewer than ``min_samples`` samples, a fold
whose training or calibration set holds one class. A constant feature is dropped and named in
``EdgeAssessment.dropped_features``; the model still takes full-width rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from sovereign.engines.cv import PurgedWalkForward, Window, sample_times
from sovereign.engines.guard import check_array, check_probability, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "CalibrationBin",
    "CalibrationMethod",
    "EdgeAssessment",
    "EdgeConfig",
    "EdgeModel",
    "EstimatorKind",
    "FeatureConcentration",
    "calibration_table",
    "edge_labels",
    "fit_edge_model",
]

Array = npt.NDArray[np.float64]
_CV_CAP = 1e6  # fold_cv reported when the mean importance is ~0 (spread without a mean)


class EstimatorKind(StrEnum):
    """The base classifier under the calibration."""

    LOGISTIC = "logistic"  # StandardScaler + LogisticRegression(C=regularisation)
    GRADIENT_BOOSTING = "gradient_boosting"  # HistGradientBoostingClassifier, shallow, seeded


class CalibrationMethod(StrEnum):
    """The calibrator a fit used (chosen from its smallest calibration fold)."""

    ISOTONIC = "isotonic"
    SIGMOID = "sigmoid"  # Platt scaling


@dataclass(frozen=True, kw_only=True, slots=True)
class EdgeConfig:
    """Settings of :func:`fit_edge_model`; the defaults are the documented ones."""

    estimator: EstimatorKind = EstimatorKind.LOGISTIC
    regularisation: float = 1.0  # inverse L2 strength C of the logistic regression
    calibration_splits: int = 3  # purged walk-forward folds inside one calibrated fit
    isotonic_min_samples: int = 1000  # smallest calibration fold for isotonic; else sigmoid
    window: Window = Window.EXPANDING  # outer evaluation and final fit window
    max_train_size: int | None = None  # rolling window in samples (ROLLING only)
    min_samples: int = 200
    n_bins: int = 10  # equal-width bins of the calibration table
    permutation_repeats: int = 5
    concentration_share: float = 0.6
    concentration_max_cv: float = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class CalibrationBin:
    """One populated bin ``(lower, upper]`` of predicted probability (the first includes 0)."""

    lower: float
    upper: float
    mean_predicted: float
    observed_frequency: float
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FeatureConcentration:
    """Whether one unstable feature drives the model (see the module docstring).

    ``feature``: the feature with the largest share; ``share`` in [0, 1]; ``fold_cv``: std/|mean|
    of its signed importance over outer folds (capped at 1e6); ``sign_flips``: its effect on the
    probability changed sign between folds; ``shares``: every kept feature's share, in order.
    """

    flagged: bool
    feature: str
    share: float
    fold_cv: float
    sign_flips: bool
    reason: str
    shares: tuple[float, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class EdgeModel:
    """A fitted, calibrated edge model. Takes rows with every original column.

    Predictions run BLAS/OpenMP single-threaded (``threads``, rebuilt when unpickled): one bar's
    few signals are far too small to gain from threads, and on a busy machine the gradient
    boosting's OpenMP start-up costs tens of times the work.
    """

    calibrated: CalibratedClassifierCV = field(repr=False)
    columns: tuple[int, ...]  # the kept (non-constant) input columns
    n_features_in: int
    method: CalibrationMethod
    threads: ThreadpoolController = field(repr=False, compare=False)

    def predict_proba(self, X_new: npt.ArrayLike) -> Array:
        """``X_new``: ndarray (n, n_features_in), finite. Returns ndarray (n,) of p(edge) in [0, 1]."""
        x = np.asarray(X_new, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in:
            raise EngineError(
                f"expected shape (n, {self.n_features_in}), got {x.shape}",
                source="assessment.predict_proba",
            )
        check_array("assessment.predict_proba.X", x)
        with self.threads.limit(limits=1):
            p = self.calibrated.predict_proba(x[:, list(self.columns)])[:, 1]
        return check_array("assessment.predict_proba", p, low=0.0, high=1.0)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_edge_model, (self.calibrated, self.columns, self.n_features_in, self.method))

    def probability(self, x_row: npt.ArrayLike) -> float:
        """p(edge) for one signal: ``x_row`` ndarray (n_features_in,)."""
        row = np.asarray(x_row, dtype=np.float64).reshape(1, -1)
        return check_probability("assessment.probability", float(self.predict_proba(row)[0]))


def _edge_model(
    calibrated: CalibratedClassifierCV,
    columns: tuple[int, ...],
    n_features_in: int,
    method: CalibrationMethod,
) -> EdgeModel:
    return EdgeModel(
        calibrated=calibrated,
        columns=columns,
        n_features_in=n_features_in,
        method=method,
        threads=ThreadpoolController(),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class EdgeAssessment:
    """Result of :func:`fit_edge_model`.

    ``oof_index``: ndarray (m,) of sample indices that have an out-of-fold prediction;
    ``oof_probability``: ndarray (m,) their probabilities; ``brier``, ``brier_reference`` (base
    rate ``base_rate`` of those samples) and ``skill = 1 - brier / brier_reference`` (<= 1);
    ``fold_methods``: the calibrator each outer fold's fit used.
    """

    model: EdgeModel
    oof_index: npt.NDArray[np.intp]
    oof_probability: Array
    brier: float
    brier_reference: float
    skill: float
    base_rate: float
    calibration: tuple[CalibrationBin, ...]
    concentration: FeatureConcentration
    feature_names: tuple[str, ...]  # kept features, in column order
    dropped_features: tuple[str, ...]  # constant features, not used
    fold_methods: tuple[CalibrationMethod, ...]


# --------------------------------------------------------------------------------------- labels


def edge_labels(forward_return: npt.ArrayLike, cost: float) -> npt.NDArray[np.int64]:
    """Label 1 where a signal's forward return beat the cost, else 0.

    ``forward_return``: ndarray (n,), the trade's simple return over the horizon (signed in the
    trade's direction). ``cost``: round-trip cost as a return (e.g. 0.001 for 10 bp), finite.
    """
    r = check_array("assessment.edge_labels.forward_return", forward_return)
    if r.ndim != 1:
        raise EngineError(f"expected shape (n,), got {r.shape}", source="assessment.edge_labels")
    threshold = check_scalar("assessment.edge_labels.cost", cost)
    return (r > threshold).astype(np.int64)


def calibration_table(
    probability: npt.ArrayLike, label: npt.ArrayLike, n_bins: int = 10
) -> tuple[CalibrationBin, ...]:
    """Reliability table over ``n_bins`` equal-width bins of [0, 1]; empty bins are omitted.

    ``probability``: ndarray (n,) in [0, 1]; ``label``: ndarray (n,) of 0/1. A probability on an
    inner edge falls in the lower bin (as in ``sklearn.calibration.calibration_curve``).
    """
    p = check_array("assessment.calibration_table.probability", probability, low=0.0, high=1.0)
    y = check_array("assessment.calibration_table.label", label, low=0.0, high=1.0)
    if p.ndim != 1 or p.shape != y.shape or n_bins < 1:
        raise EngineError(
            f"probability {p.shape} and label {y.shape} must be equal 1-D; n_bins {n_bins} >= 1",
            source="assessment.calibration_table",
        )
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    count = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y, minlength=n_bins)
    return tuple(
        CalibrationBin(
            lower=float(edges[b]),
            upper=float(edges[b + 1]),
            mean_predicted=float(sum_p[b] / count[b]),
            observed_frequency=float(sum_y[b] / count[b]),
            count=int(count[b]),
        )
        for b in range(n_bins)
        if count[b] > 0
    )


# -------------------------------------------------------------------------------------- fitting


def _child_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for scikit-learn derived from ``(seed, stream)`` (stream -1: the model)."""
    state = np.random.SeedSequence([seed, stream + 1]).generate_state(1)
    return int(state[0])


def _base_estimator(config: EdgeConfig, seed: int) -> ClassifierMixin:
    if config.estimator is EstimatorKind.GRADIENT_BOOSTING:
        return HistGradientBoostingClassifier(
            max_iter=100,
            max_depth=3,
            learning_rate=0.05,
            min_samples_leaf=20,
            early_stopping=False,
            random_state=_child_seed(seed, -1),
        )
    return Pipeline(  # type: ignore[return-value]
        [
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(C=config.regularisation, max_iter=1000)),
        ]
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Plan:
    """What every calibrated fit of one :func:`fit_edge_model` call shares."""

    horizon: int
    embargo: int
    config: EdgeConfig
    seed: int

    def fit(
        self, x: Array, y: npt.NDArray[np.int64], t: npt.NDArray[np.int64], where: str
    ) -> tuple[CalibratedClassifierCV, CalibrationMethod]:
        """One calibrated fit on rows in time order: purged inner splits, base + calibrator."""
        inner = PurgedWalkForward(
            n_splits=self.config.calibration_splits, horizon=self.horizon, embargo=self.embargo
        )
        splits = list(inner.split(x, groups=t))
        for k, (train, test) in enumerate(splits):
            for name, part in (("training", train), ("calibration", test)):
                if np.unique(y[part]).size < 2:
                    raise EngineError(
                        f"{where}: calibration split {k} has one class in its {name} set "
                        f"({part.size} samples); need more samples or a less rare label",
                        source="assessment.fit_edge_model",
                    )
        smallest = min(test.size for _, test in splits)
        method = CalibrationMethod.SIGMOID
        if smallest >= self.config.isotonic_min_samples:
            method = CalibrationMethod.ISOTONIC
        base = _base_estimator(self.config, self.seed)
        model = CalibratedClassifierCV(base, method=method.value, cv=splits, ensemble=True)
        model.fit(x, y)
        return model, method


def _neg_brier(estimator: CalibratedClassifierCV, x: Array, y: npt.NDArray[np.int64]) -> float:
    p = estimator.predict_proba(x)[:, 1]
    return -float(np.mean((p - y) ** 2))


def _direction(model: CalibratedClassifierCV, x: Array, j: int) -> float:
    """Mean change of p(edge) when feature ``j`` moves from its 25th to its 75th percentile."""
    lo, hi = np.percentile(x[:, j], [25.0, 75.0])
    x_lo, x_hi = x.copy(), x.copy()
    x_lo[:, j], x_hi[:, j] = lo, hi
    return float(np.mean(model.predict_proba(x_hi)[:, 1] - model.predict_proba(x_lo)[:, 1]))


def _concentration(
    importance: Array,
    directions: Array,
    names: tuple[str, ...],
    config: EdgeConfig,
) -> FeatureConcentration:
    """``importance``: (n_folds, n_features) signed; ``directions``: (n_folds,) of the top one."""
    reliance = np.abs(importance).mean(axis=0)
    total = float(reliance.sum())
    shares = reliance / total if total > 0 else np.zeros_like(reliance)
    top = int(np.argmax(reliance))
    share = float(shares[top])
    mean = float(importance[:, top].mean())
    spread = float(importance[:, top].std())
    fold_cv = 0.0 if spread == 0.0 else spread / max(abs(mean), spread / _CV_CAP)
    flips = bool((directions > 0).any() and (directions < 0).any())
    unstable = fold_cv > config.concentration_max_cv or flips
    flagged = total > 0 and share > config.concentration_share and unstable
    if total <= 0:
        reason = "no feature changes the out-of-fold Brier score"
    else:
        why = []
        if fold_cv > config.concentration_max_cv:
            why.append(f"importance CV across folds {fold_cv:.3g} > {config.concentration_max_cv}")
        if flips:
            why.append("its effect on p(edge) changes sign between folds")
        stability = "; ".join(why) if why else f"stable across folds (CV {fold_cv:.3g})"
        reason = (
            f"'{names[top]}' carries {share:.0%} of the importance "
            f"(limit {config.concentration_share:.0%}); {stability}"
        )
    return FeatureConcentration(
        flagged=flagged,
        feature=names[top],
        share=check_probability("assessment.concentration.share", share),
        fold_cv=check_scalar("assessment.concentration.fold_cv", fold_cv, low=0.0),
        sign_flips=flips,
        reason=reason,
        shares=tuple(float(s) for s in shares),
    )


def _validate(
    X: npt.ArrayLike, y: npt.ArrayLike, t_index: npt.ArrayLike, min_samples: int
) -> tuple[Array, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    src = "assessment.fit_edge_model"
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise EngineError(f"X must have shape (n_samples, n_features), got {x.shape}", source=src)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise EngineError(f"X is not finite at row {row}, column {col}: {x[row, col]}", source=src)
    n = x.shape[0]
    labels = np.asarray(y)
    if labels.shape != (n,) or not np.isin(labels, (0, 1)).all():
        raise EngineError(f"y must be 0/1 of shape ({n},), got shape {labels.shape}", source=src)
    if n < min_samples:
        raise EngineError(f"{n} samples < min_samples {min_samples}", source=src)
    if np.unique(labels).size < 2:
        raise EngineError(f"y holds one class only ({int(labels[0])})", source=src)
    return x, labels.astype(np.int64), sample_times(t_index, n)


def fit_edge_model(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    t_index: npt.ArrayLike,
    *,
    horizon: int,
    n_splits: int = 5,
    embargo: int = 0,
    seed: int,
    feature_names: Sequence[str] | None = None,
    config: EdgeConfig | None = None,
) -> EdgeAssessment:
    """Fit and assess a calibrated edge model with purged walk-forward cross-validation.

    ``X``: ndarray (n_samples, n_features), finite features known at signal time, rows sorted
    by time. ``y``: ndarray (n_samples,) of 0/1 (:func:`edge_labels`). ``t_index``: ndarray
    (n_samples,) of integer bar positions of the signals, non-decreasing. ``horizon``: label span
    in bars; ``n_splits``: outer walk-forward folds; ``embargo``: extra gap in bars; ``seed``
    (>= 0): seeds the gradient boosting and the permutations (same seed, same result).
    BLAS/OpenMP run single-threaded during the call (small problems: threads cost 3-25x more
    than they save on a busy 2-core machine, measured).
    """
    cfg = config if config is not None else EdgeConfig()
    if seed < 0:
        raise EngineError(f"seed must be >= 0, got {seed}", source="assessment.fit_edge_model")
    x, labels, t = _validate(X, y, t_index, cfg.min_samples)
    default = (f"x{j}" for j in range(x.shape[1]))
    names = tuple(str(f) for f in (default if feature_names is None else feature_names))
    if len(names) != x.shape[1]:
        raise EngineError(
            f"{len(names)} feature names for {x.shape[1]} columns",
            source="assessment.fit_edge_model",
        )
    constant = np.ptp(x, axis=0) == 0.0
    if constant.all():
        raise EngineError("every feature is constant", source="assessment.fit_edge_model")
    columns = tuple(int(j) for j in np.flatnonzero(~constant))
    x_used = x[:, list(columns)]
    kept = tuple(names[j] for j in columns)
    plan = _Plan(horizon=horizon, embargo=embargo, config=cfg, seed=seed)
    outer = PurgedWalkForward(
        n_splits=n_splits,
        horizon=horizon,
        embargo=embargo,
        window=cfg.window,
        max_train_size=cfg.max_train_size,
    )
    start = 0  # the final fit's window
    if cfg.window is Window.ROLLING and cfg.max_train_size is not None:
        start = max(0, x_used.shape[0] - cfg.max_train_size)

    with ThreadpoolController().limit(limits=1):
        folds = []  # (model, test indices, calibration method)
        importance = np.zeros((n_splits, len(columns)))
        for k, (train, test) in enumerate(outer.split(x_used, groups=t)):
            model, method = plan.fit(x_used[train], labels[train], t[train], f"outer fold {k}")
            folds.append((model, test, method))
            importance[k] = permutation_importance(
                model,
                x_used[test],
                labels[test],
                scoring=_neg_brier,
                n_repeats=cfg.permutation_repeats,
                random_state=_child_seed(seed, k),
            ).importances_mean
        top = int(np.argmax(np.abs(importance).mean(axis=0)))
        directions = np.array([_direction(m, x_used[test], top) for m, test, _ in folds])
        prob = np.concatenate([m.predict_proba(x_used[test])[:, 1] for m, test, _ in folds])
        final, final_method = plan.fit(x_used[start:], labels[start:], t[start:], "final fit")

    index = np.concatenate([test for _, test, _ in folds])
    prob = check_array("assessment.oof_probability", prob, low=0.0, high=1.0)
    y_oof = labels[index].astype(np.float64)
    base_rate = float(y_oof.mean())
    reference = base_rate * (1.0 - base_rate)
    if reference == 0.0:
        raise EngineError(
            f"the out-of-fold samples hold one class only (base rate {base_rate})",
            source="assessment.fit_edge_model",
        )
    brier = float(np.mean((prob - y_oof) ** 2))
    return EdgeAssessment(
        model=_edge_model(final, columns, x.shape[1], final_method),
        oof_index=index,
        oof_probability=prob,
        brier=check_probability("assessment.brier", brier),
        brier_reference=check_probability("assessment.brier_reference", reference),
        skill=check_scalar("assessment.skill", 1.0 - brier / reference, high=1.0),
        base_rate=check_probability("assessment.base_rate", base_rate),
        calibration=calibration_table(prob, y_oof, cfg.n_bins),
        concentration=_concentration(importance, directions, kept, cfg),
        feature_names=kept,
        dropped_features=tuple(names[j] for j in np.flatnonzero(constant)),
        fold_methods=tuple(method for _, _, method in folds),
    )
