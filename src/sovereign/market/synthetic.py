"""Seeded synthetic OHLCV: a regime-switching market, a no-edge random walk, and stress edits.

Time: bar ``i`` is stamped ``start + i * interval`` (UTC) and bars run on continuous calendar
time, with no sessions, weekends or holidays skipped (daily bars are calendar days). Annualised
parameters are therefore scaled with a year of 365.25 days: one bar is
``dt = interval / 365.25 days`` years.

Prices: each symbol's log return over one bar is

    r = (mu - sigma_i^2 / 2) dt + sigma_i sqrt(dt) (rho z_market + sqrt(1 - rho^2) z_i)
        + kappa dt (anchor - log price)          (ranging regimes only; pulls back to the anchor)

with ``mu``, ``sigma`` and ``kappa`` from the current regime, ``sigma_i`` the regime volatility
times a per-symbol scale in [0.8, 1.25], one market shock ``z_market`` shared by all symbols (so
they are correlated, about ``rho`` squared between symbols) and ``anchor`` the log price when the
regime began. Open is the previous close times a small gap; high and low extend beyond the body by
half-normal amounts, so ``high >= max(open, close)``, ``low <= min(open, close)`` and all > 0.
Volume is lognormal around a per-symbol base (shares per day, scaled by the interval), times the
regime's volume multiplier (highest for the volatile regime) and rising with the bar's move.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same market.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sovereign.market.bars import BarPanel, Feature

_YEAR = pd.Timedelta(days=365.25)
_REGIMES = ("trending_up", "trending_down", "ranging", "volatile")


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeSpec:
    """One market regime's dynamics.

    ``name``: a :class:`sovereign.rules.context.Regime` value (not ``uncertain``).
    ``drift``: annualised expected simple return (0.3 = +30 % a year).
    ``volatility``: annualised volatility of log returns (0.2 = 20 %).
    ``mean_duration``: expected length of a stay in this regime, in bars (> 1); the chain stays
    with probability ``1 - 1 / mean_duration`` each bar and otherwise moves to another regime
    chosen uniformly.
    ``mean_reversion``: annualised speed ``kappa`` pulling the log price back to its level at the
    start of the regime (0 = none).
    ``volume_multiplier``: scales the volume of every bar in this regime.
    """

    name: str
    drift: float
    volatility: float
    mean_duration: float
    mean_reversion: float = 0.0
    volume_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in _REGIMES:
            raise ValueError(f"regime name {self.name!r} must be one of {', '.join(_REGIMES)}")
        if not self.drift > -1:
            raise ValueError(f"regime {self.name}: drift must be > -1 (a simple return)")
        if not self.volatility > 0:
            raise ValueError(f"regime {self.name}: volatility must be > 0")
        if not self.mean_duration > 1:
            raise ValueError(f"regime {self.name}: mean_duration must be > 1 bar")
        if self.mean_reversion < 0 or not self.volume_multiplier > 0:
            raise ValueError(
                f"regime {self.name}: mean_reversion must be >= 0, volume_multiplier > 0"
            )


DEFAULT_REGIMES: tuple[RegimeSpec, ...] = (
    RegimeSpec(name="trending_up", drift=0.60, volatility=0.15, mean_duration=120),
    RegimeSpec(
        name="trending_down", drift=-0.50, volatility=0.22, mean_duration=80,
        volume_multiplier=1.3,
    ),
    RegimeSpec(
        name="ranging", drift=0.0, volatility=0.12, mean_duration=100, mean_reversion=25.0,
        volume_multiplier=0.8,
    ),
    RegimeSpec(
        name="volatile", drift=0.0, volatility=0.65, mean_duration=40, volume_multiplier=2.5,
    ),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class SyntheticMarket:
    """A generated market and its ground truth.

    ``panel``: OHLCV with features CLOSE, OHLC and VOLUME, shape (n_bars, n_symbols).
    ``regimes``: ndarray of shape (n_bars,), dtype object, the true regime name of each bar.
    """

    panel: BarPanel
    regimes: np.ndarray


def generate(
    *,
    symbols: int | Sequence[str] = 5,
    n_bars: int = 1000,
    interval: str | pd.Timedelta = "1D",
    start: str | pd.Timestamp = "2020-01-01",
    seed: int,
    regimes: tuple[RegimeSpec, ...] | None = None,
    correlation: float = 0.6,
) -> SyntheticMarket:
    """A regime-switching market (see the module docstring for the model).

    ``symbols``: a count (named ``SYN00``, ``SYN01``, ...) or the names.
    ``interval``: bar length, anything ``pandas.Timedelta`` accepts ("1D", "1h", "5min").
    ``start``: first bar's timestamp; a naive value is taken as UTC.
    ``regimes``: the regime set (default :data:`DEFAULT_REGIMES`).
    ``correlation``: loading ``rho`` of every symbol on the common market shock, in [0, 1).
    """
    specs = DEFAULT_REGIMES if regimes is None else tuple(regimes)
    if not specs:
        raise ValueError("regimes must not be empty")
    names, dt, stamps = _frame(symbols, n_bars, interval, start)
    rng = np.random.default_rng(seed)
    states = _markov_chain(rng, specs, n_bars)
    panel = _simulate(
        rng, specs, states, names, dt, stamps, correlation, source=f"synthetic:{seed}"
    )
    labels = np.array([specs[s].name for s in states], dtype=object)
    return SyntheticMarket(panel=panel, regimes=labels)


def random_walk(
    *,
    symbols: int | Sequence[str] = 5,
    n_bars: int = 1000,
    interval: str | pd.Timedelta = "1D",
    start: str | pd.Timestamp = "2020-01-01",
    seed: int,
    volatility: float = 0.2,
    correlation: float = 0.0,
) -> BarPanel:
    """A market with no edge: prices are martingales (zero expected return), one regime.

    Same OHLCV construction as :func:`generate`; ``volatility`` is annualised.
    """
    spec = RegimeSpec(name="ranging", drift=0.0, volatility=volatility, mean_duration=2.0)
    names, dt, stamps = _frame(symbols, n_bars, interval, start)
    rng = np.random.default_rng(seed)
    states = np.zeros(n_bars, dtype=np.intp)
    return _simulate(
        rng, (spec,), states, names, dt, stamps, correlation, source=f"random_walk:{seed}"
    )


def with_flash_crash(
    panel: BarPanel,
    *,
    at: int,
    depth: float,
    symbols: Sequence[str] | None = None,
    recovery_bars: int,
) -> BarPanel:
    """A copy of ``panel`` with a crash of ``depth`` (0.3 = -30 %) at bar ``at``.

    Prices of bar ``at + k`` are multiplied by ``1 - depth * (1 - k / recovery_bars)`` for
    ``0 <= k < recovery_bars`` (so the close of bar ``at`` is ``depth`` lower and the level is
    back at bar ``at + recovery_bars``); each bar's open carries the previous bar's factor, and
    high/low are widened to keep every bar consistent. ``symbols``: the ones hit (default all).
    Volume is unchanged.
    """
    if not 0 < depth < 1:
        raise ValueError(f"depth must be in (0, 1), got {depth}")
    if not 0 <= at < panel.n_bars:
        raise ValueError(f"at={at} is outside the panel's {panel.n_bars} bars")
    if recovery_bars < 1:
        raise ValueError("recovery_bars must be >= 1")
    k = np.arange(panel.n_bars) - at
    factor = np.where((k >= 0) & (k < recovery_bars), 1 - depth * (1 - k / recovery_bars), 1.0)
    open_factor = np.concatenate([[1.0], factor[:-1]])
    cols = _columns(panel, symbols)
    return _rescale(panel, cols, factor, open_factor)


def with_volatility(panel: BarPanel, factor: float, *, start: int, stop: int) -> BarPanel:
    """A copy of ``panel`` whose bars ``start:stop`` move ``factor`` times as much.

    Close-to-close log returns in the window are multiplied by ``factor`` (the level shift carries
    on after ``stop``), and each bar's open/high/low keep their log distance to the close times
    ``factor`` in the window, so bars stay consistent. Returns across NaN gaps are not changed.
    """
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if not 0 <= start <= stop <= panel.n_bars:
        raise ValueError(f"need 0 <= start <= stop <= {panel.n_bars}, got {start}:{stop}")
    in_window = np.zeros(panel.n_bars, dtype=bool)
    in_window[start:stop] = True
    scale = np.where(in_window, factor, 1.0)[:, None]
    log_close = np.log(panel.close)
    returns = np.nan_to_num(np.diff(log_close, axis=0, prepend=np.nan), nan=0.0)
    new_log_close = log_close + np.cumsum((scale - 1.0) * returns, axis=0)
    new_close = np.exp(new_log_close)
    new = {"close": new_close}
    for name in ("open", "high", "low"):
        new[name] = new_close * np.exp(scale * np.log(getattr(panel, name) / panel.close))
    return _replace(panel, new)


# -- internals ---------------------------------------------------------------------------------


def _frame(
    symbols: int | Sequence[str],
    n_bars: int,
    interval: str | pd.Timedelta,
    start: str | pd.Timestamp,
) -> tuple[tuple[str, ...], float, pd.DatetimeIndex]:
    """(symbol names, bar length in years, bar timestamps)."""
    if isinstance(symbols, int | np.integer):
        if symbols < 1:
            raise ValueError("symbols must be >= 1")
        names = tuple(f"SYN{i:02d}" for i in range(int(symbols)))
    else:
        names = tuple(symbols)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"symbols must be distinct and non-empty, got {names}")
    if n_bars < 1:
        raise ValueError("n_bars must be >= 1")
    step = pd.Timedelta(interval)
    if step <= pd.Timedelta(0):
        raise ValueError(f"interval must be positive, got {interval!r}")
    first = pd.Timestamp(start)
    first = first.tz_localize("UTC") if first.tz is None else first.tz_convert("UTC")
    stamps = pd.DatetimeIndex(first + step * np.arange(n_bars))
    return names, step / _YEAR, stamps


def _markov_chain(rng: np.random.Generator, specs: tuple[RegimeSpec, ...], n: int) -> np.ndarray:
    """Regime index per bar, ndarray of shape (n,), from a sticky transition matrix."""
    k = len(specs)
    states = np.empty(n, dtype=np.intp)
    states[0] = rng.integers(k)
    stay = np.array([1.0 - 1.0 / s.mean_duration for s in specs])
    draws = rng.random(n)
    moves = rng.integers(max(k - 1, 1), size=n)
    for t in range(1, n):
        prev = states[t - 1]
        if k == 1 or draws[t] < stay[prev]:
            states[t] = prev
        else:
            states[t] = moves[t] + (moves[t] >= prev)  # uniform over the other regimes
    return states


def _simulate(
    rng: np.random.Generator,
    specs: tuple[RegimeSpec, ...],
    states: np.ndarray,
    names: tuple[str, ...],
    dt: float,
    stamps: pd.DatetimeIndex,
    correlation: float,
    *,
    source: str,
) -> BarPanel:
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    n, m = len(states), len(names)
    mu = np.array([s.drift for s in specs])[states][:, None]
    sigma = np.array([s.volatility for s in specs])[states][:, None] * rng.uniform(0.8, 1.25, m)
    kappa = np.array([s.mean_reversion for s in specs])[states]
    vol_mult = np.array([s.volume_multiplier for s in specs])[states][:, None]
    shocks = correlation * rng.standard_normal((n, 1)) + np.sqrt(
        1 - correlation**2
    ) * rng.standard_normal((n, m))
    base = (np.log1p(mu) - 0.5 * sigma**2) * dt + sigma * np.sqrt(dt) * shocks
    log_close = np.empty((n, m))
    level = np.log(rng.uniform(20.0, 200.0, m))
    anchor = level.copy()
    pull = np.minimum(kappa * dt, 1.0)
    for t in range(n):
        if t > 0 and states[t] != states[t - 1]:
            anchor = level.copy()
        level = level + base[t] + pull[t] * (anchor - level)
        log_close[t] = level
    close = np.exp(log_close)
    bar_sd = sigma * np.sqrt(dt)
    prev = np.vstack([close[:1] * np.exp(-base[:1]), close[:-1]])
    open_ = prev * np.exp(0.1 * bar_sd * rng.standard_normal((n, m)))
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    high = body_hi * np.exp(0.5 * bar_sd * np.abs(rng.standard_normal((n, m))))
    low = body_lo * np.exp(-0.5 * bar_sd * np.abs(rng.standard_normal((n, m))))
    per_day = rng.uniform(2e5, 5e6, m)
    move = np.abs(np.log(close / open_)) / bar_sd
    volume = (
        per_day
        * (dt * _YEAR / pd.Timedelta(days=1))
        * vol_mult
        * (1.0 + 0.3 * move)
        * np.exp(0.3 * rng.standard_normal((n, m)))
    )
    return BarPanel(
        timestamps=stamps,
        symbols=names,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.round(volume),
        features=frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME}),
        source=source,
    )


def _columns(panel: BarPanel, symbols: Sequence[str] | None) -> list[int]:
    if symbols is None:
        return list(range(panel.n_symbols))
    return [panel.column(s) for s in symbols]


def _rescale(
    panel: BarPanel, cols: list[int], factor: np.ndarray, open_factor: np.ndarray
) -> BarPanel:
    new = {name: getattr(panel, name).copy() for name in ("open", "high", "low", "close")}
    for name in ("high", "low", "close"):
        new[name][:, cols] *= factor[:, None]
    new["open"][:, cols] *= open_factor[:, None]
    return _replace(panel, new)


def _replace(panel: BarPanel, prices: dict[str, np.ndarray]) -> BarPanel:
    """``panel`` with new open/high/low/close, high/low widened to contain open and close."""
    o, c = prices.get("open", panel.open), prices["close"]
    with np.errstate(invalid="ignore"):
        high = np.fmax(prices.get("high", panel.high), np.fmax(o, c))
        low = np.fmin(prices.get("low", panel.low), np.fmin(o, c))
    return BarPanel(
        timestamps=panel.timestamps,
        symbols=panel.symbols,
        open=o,
        high=high,
        low=low,
        close=c,
        volume=panel.volume.copy(),
        features=panel.features,
        source=panel.source,
    )
