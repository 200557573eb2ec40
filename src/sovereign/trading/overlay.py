"""The engines' overlay on the Supervisor: exposure limits from stability, the crash sentinel
and fragility, per bar and causal.

:func:`compute_overlay` runs once per panel (like the regime path; it does not depend on the
rules, so a backtest, the gate's baseline and candidate, and the live loop share it):

- **stability** (:func:`sovereign.engines.stability.stability_series`): STABLE trades at full
  size, FRAGILE at ``fragile_scale``, UNSTABLE at ``unstable_scale`` of the usual position cap;
  its level is also the analytics' and the gate's stability bucket.
- **crash sentinel** (:func:`sovereign.engines.sentinel.sentinel_series`): HALVE halves the
  position cap, STAND_DOWN stops new risk (exits still run). Before it has ``min_history`` bars
  it is warming up and neutral (documented, and reported as a reason).
- **fragility** (:mod:`sovereign.engines.fragility`): every ``fragility_refit`` bars, on the
  returns strictly before the refit bar, the worst stressed loss of a unit-gross equal-weight
  long book and of a short one, over the market-wide scenarios (every crisis window and the
  market-wide synthetic shocks; single-name gaps are left to the per-position cap) and both risk
  models, the worse one. The horizon is ``stress_horizon_days`` (2: the Supervisor decides at a
  close and acts at the next open, so two days is what a book is exposed to before it can
  react). The Supervisor then allows new long (short) exposure only while the book's stressed
  loss, ``long_gross * L + short_gross * U``, fits in the room left before the drawdown stop,
  ``max_drawdown - drawdown``: a crisis day cannot carry the account through its hard limit.

:meth:`Overlay.limits` checks every value it reads with :mod:`sovereign.engines.guard`; a NaN or
out-of-range output raises :class:`~sovereign.errors.EngineError` and the Trader stands down for
that bar rather than trade on it.

A universe larger than ``max_assets`` (50) is read on an evenly spaced sample of that many
symbols (:func:`market_sample`): these are market-wide measures.

Missing returns (a symbol not listed yet) are filled with that bar's mean return of the symbols
that have one, so the sentinel and the stress models see a full matrix; a bar where no symbol
has a return counts as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from sovereign.engines.fragility import (
    DEFAULT_SCENARIOS,
    FragilityConfig,
    Scenario,
    ScenarioKind,
    SyntheticShock,
    build_profile,
)
from sovereign.engines.guard import check_probability, check_scalar
from sovereign.engines.sentinel import SentinelConfig, sentinel_series
from sovereign.engines.stability import StabilityConfig, StabilityLevel, stability_series
from sovereign.errors import EngineError
from sovereign.market.bars import BarPanel

__all__ = [
    "NEUTRAL",
    "ExposureLimits",
    "Overlay",
    "OverlayConfig",
    "compute_overlay",
    "market_wide_scenarios",
]

_LEVELS = (StabilityLevel.STABLE, StabilityLevel.FRAGILE, StabilityLevel.UNSTABLE)


def market_wide_scenarios() -> tuple[Scenario, ...]:
    """The default scenarios minus single-name shocks (those are the per-position cap's job)."""
    return tuple(
        s
        for s in DEFAULT_SCENARIOS
        if not (s.kind is ScenarioKind.SYNTHETIC and s.shock is SyntheticShock.SINGLE_ASSET_GAP)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class OverlayConfig:
    """Settings of the overlay (defaults in the module docstring). ``enabled=False`` gives a
    neutral overlay (every limit off), for experiments that isolate a strategy."""

    enabled: bool = True
    fragile_scale: float = 0.75
    unstable_scale: float = 0.5
    stability: StabilityConfig = field(default_factory=lambda: StabilityConfig(refit_every=252))
    sentinel: SentinelConfig = field(default_factory=SentinelConfig)
    fragility_refit: int = 252
    fragility_min_bars: int = 252
    stress_horizon_days: int = 2
    stress_paths: int = 500
    stress_budget: float = 2.0  # multiple of the room before the drawdown stop stress may use
    max_assets: int = 50  # the market's state is read on at most this many symbols

    def __post_init__(self) -> None:
        if not 0 < self.unstable_scale <= self.fragile_scale <= 1:
            raise ValueError("overlay: need 0 < unstable_scale <= fragile_scale <= 1")
        if self.fragility_refit < 1 or self.fragility_min_bars < 61:
            raise ValueError("overlay: fragility_refit >= 1 and fragility_min_bars > 60")
        if self.stress_horizon_days < 1 or self.stress_paths < 50 or not self.stress_budget > 0:
            raise ValueError("overlay: stress horizon >= 1, paths >= 50, budget > 0")
        if self.max_assets < 2:
            raise ValueError("overlay: max_assets must be >= 2")


@dataclass(frozen=True, kw_only=True, slots=True)
class ExposureLimits:
    """What the engines allow at one bar.

    ``scale`` multiplies the usual position cap (1 = no change). ``stand_down``: no new risk.
    ``stress_left``: what the stress budget leaves after the book's stressed loss (fraction of
    equity; inf: no stress model yet); ``loss_long`` / ``loss_short``: stressed loss per unit of
    new long / short exposure. ``bucket``: the stability bucket.
    """

    scale: float = 1.0
    stand_down: bool = False
    stress_left: float = math.inf
    loss_long: float = 0.0
    loss_short: float = 0.0
    bucket: str = "unknown"
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def long_room(self) -> float:
        """The largest new long exposure (fraction of equity) the stress budget allows."""
        return _room(self.stress_left, self.loss_long)

    @property
    def short_room(self) -> float:
        return _room(self.stress_left, self.loss_short)

    def room(self, side: int) -> float:
        return self.long_room if side > 0 else self.short_room

    def consume(self, side: int, fraction: float) -> ExposureLimits:
        """The limits after a new position of ``fraction`` of equity on ``side`` (+1 / -1)."""
        if math.isinf(self.stress_left):
            return self
        unit = self.loss_long if side > 0 else self.loss_short
        return replace(self, stress_left=self.stress_left - abs(fraction) * unit)


NEUTRAL = ExposureLimits()


@dataclass(frozen=True, kw_only=True)
class Overlay:
    """Per-bar engine outputs, arrays of shape (n_bars,).

    ``stability``: score in [0, 1]; ``level``: int8 index into (STABLE, FRAGILE, UNSTABLE);
    ``sentinel``: int8 0 none / 1 halve / 2 stand down; ``sentinel_ready``: bool, past its
    warm-up; ``stress_long`` / ``stress_short``: stressed loss per unit of long / short gross
    exposure (fraction of equity), NaN where ``stress_fitted`` is False.
    """

    stability: np.ndarray
    level: np.ndarray
    sentinel: np.ndarray
    sentinel_ready: np.ndarray
    stress_long: np.ndarray
    stress_short: np.ndarray
    stress_fitted: np.ndarray
    config: OverlayConfig = field(default_factory=OverlayConfig)

    @property
    def n_bars(self) -> int:
        return int(self.stability.shape[0])

    def buckets(self) -> np.ndarray:
        """object (n_bars,): "stable" / "fragile" / "unstable", the analytics' slices."""
        names = np.array([lv.value for lv in _LEVELS], dtype=object)
        return names[np.clip(self.level.astype(np.int64), 0, 2)]

    def slice(self, start: int, stop: int) -> Overlay:
        """Bars ``[start, stop)`` (the values are causal, so a prefix is what a shorter panel
        would have given, up to the refit schedule's origin)."""
        return replace(
            self,
            stability=self.stability[start:stop],
            level=self.level[start:stop],
            sentinel=self.sentinel[start:stop],
            sentinel_ready=self.sentinel_ready[start:stop],
            stress_long=self.stress_long[start:stop],
            stress_short=self.stress_short[start:stop],
            stress_fitted=self.stress_fitted[start:stop],
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "overlay_stability": self.stability,
            "overlay_level": self.level,
            "overlay_sentinel": self.sentinel,
            "overlay_sentinel_ready": self.sentinel_ready,
            "overlay_stress_long": self.stress_long,
            "overlay_stress_short": self.stress_short,
            "overlay_stress_fitted": self.stress_fitted,
        }

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], config: OverlayConfig) -> Overlay:
        return cls(
            stability=np.asarray(data["overlay_stability"], dtype=np.float64),
            level=np.asarray(data["overlay_level"], dtype=np.int8),
            sentinel=np.asarray(data["overlay_sentinel"], dtype=np.int8),
            sentinel_ready=np.asarray(data["overlay_sentinel_ready"], dtype=bool),
            stress_long=np.asarray(data["overlay_stress_long"], dtype=np.float64),
            stress_short=np.asarray(data["overlay_stress_short"], dtype=np.float64),
            stress_fitted=np.asarray(data["overlay_stress_fitted"], dtype=bool),
            config=config,
        )

    def limits(
        self,
        i: int,
        *,
        drawdown: float,
        max_drawdown: float,
        long_gross: float,
        short_gross: float,
    ) -> ExposureLimits:
        """The limits at bar ``i`` for a book with ``long_gross`` / ``short_gross`` exposure
        (fractions of equity) at ``drawdown`` from its peak. Raises :class:`EngineError` when
        an engine output is not finite or out of range."""
        if not self.config.enabled:
            return NEUTRAL
        cfg = self.config
        score = check_probability("overlay.stability", float(self.stability[i]))
        level = int(check_scalar("overlay.stability_level", float(self.level[i]), low=0, high=2))
        bucket = _LEVELS[level].value
        scale = (1.0, cfg.fragile_scale, cfg.unstable_scale)[level]
        reasons = [] if level == 0 else [f"stability {bucket} ({score:.2f}): size x{scale:g}"]
        stand_down = False
        if bool(self.sentinel_ready[i]):
            action = int(check_scalar("overlay.sentinel", float(self.sentinel[i]), low=0, high=2))
            if action == 1:
                scale = min(scale, 0.5)
                reasons.append("crash sentinel: halve exposure")
            elif action == 2:
                stand_down = True
                reasons.append("crash sentinel: stand down")
        left, loss_long, loss_short = math.inf, 0.0, 0.0
        if bool(self.stress_fitted[i]):
            loss_long = check_scalar("overlay.stress_long", float(self.stress_long[i]), low=0)
            loss_short = check_scalar("overlay.stress_short", float(self.stress_short[i]), low=0)
            room = max(0.0, max_drawdown - drawdown) * cfg.stress_budget
            left = room - long_gross * loss_long - short_gross * loss_short
            if min(_room(left, loss_long), _room(left, loss_short)) < 1.0:
                reasons.append(
                    f"stress: {max(left, 0.0):.1%} of the drawdown budget left after a "
                    f"{cfg.stress_horizon_days}-day crisis "
                    f"(long {loss_long:.1%}, short {loss_short:.1%} per unit)"
                )
        return ExposureLimits(
            scale=scale,
            stand_down=stand_down,
            stress_left=left,
            loss_long=loss_long,
            loss_short=loss_short,
            bucket=bucket,
            reasons=tuple(reasons),
        )


def _room(left: float, unit_loss: float) -> float:
    if left <= 0:
        return 0.0
    return math.inf if unit_loss <= 0 else left / unit_loss


# ------------------------------------------------------------------------------- compute


def compute_overlay(
    panel: BarPanel, config: OverlayConfig | None = None, *, seed: int = 42
) -> Overlay:
    """The overlay of ``panel`` (see the module docstring); bar ``t`` uses bars ``<= t`` only
    (the stress models: bars ``<`` their refit bar). Deterministic for a ``seed``."""
    cfg = config or OverlayConfig()
    n = panel.n_bars
    if not cfg.enabled or n == 0:
        return _neutral(n, cfg)
    panel = market_sample(panel, cfg.max_assets)
    stab = stability_series(
        panel.close,
        _optional(panel.volume),
        *_high_low(panel),
        config=cfg.stability,
    )
    returns = filled_returns(panel.close)
    sentinel = np.zeros(n, dtype=np.int8)
    ready = np.zeros(n, dtype=bool)
    if n >= cfg.sentinel.min_history:
        series = sentinel_series(returns, cfg.sentinel)
        sentinel = series.level.astype(np.int8)
        ready[series.start :] = True
    stress_long, stress_short, fitted = _stress(panel, returns, cfg, seed)
    level = np.array([_LEVELS.index(lv) for lv in stab.level], dtype=np.int8)
    return Overlay(
        stability=np.asarray(stab.score, dtype=np.float64),
        level=level,
        sentinel=sentinel,
        sentinel_ready=ready,
        stress_long=stress_long,
        stress_short=stress_short,
        stress_fitted=fitted,
        config=cfg,
    )


def market_sample(panel: BarPanel, max_assets: int) -> BarPanel:
    """``panel`` itself, or for a large universe an evenly spaced, deterministic sample of
    ``max_assets`` of its symbols: the overlay reads the state of the market (stability,
    contagion, the sentinel's turbulence, the stress of a unit book), which a broad sample
    carries, while the contagion's eigenvalues and turbulence's covariance grow with the cube
    of the number of symbols."""
    if panel.n_symbols <= max_assets:
        return panel
    keep = np.unique(np.linspace(0, panel.n_symbols - 1, max_assets).round().astype(np.int64))
    return panel.select([panel.symbols[j] for j in keep])


def filled_returns(close: np.ndarray) -> np.ndarray:
    """Simple returns (n_bars, n_symbols) with missing values filled by the bar's cross-section
    mean (0 on a bar where no symbol has one, and on the first bar)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = close[1:] / close[:-1] - 1.0
    r = np.vstack([np.full((1, close.shape[1]), np.nan), r])
    r[~np.isfinite(r)] = np.nan
    have = np.isfinite(r)
    counts = have.sum(axis=1)
    sums = np.where(have, r, 0.0).sum(axis=1)
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return np.where(have, r, mean[:, None])


def _stress(
    panel: BarPanel, returns: np.ndarray, cfg: OverlayConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = returns.shape[0]
    long_ = np.full(n, np.nan)
    short = np.full(n, np.nan)
    fitted = np.zeros(n, dtype=bool)
    fcfg = FragilityConfig(
        horizon_days=cfg.stress_horizon_days,
        block_days=1,
        n_paths=cfg.stress_paths,
        scenarios=market_wide_scenarios(),
    )
    frame = pd.DataFrame(returns, index=panel.timestamps, columns=list(panel.symbols))
    frame.iloc[0] = 0.0
    for start in range(cfg.fragility_min_bars, n, cfg.fragility_refit):
        listed = np.isfinite(panel.close[start])
        if not listed.any():
            continue
        try:
            profile = build_profile(
                frame, seed=seed, config=fcfg, as_of=panel.timestamps[start].to_pydatetime()
            )
            unit = np.where(listed, 1.0 / listed.sum(), 0.0)
            loss_long = profile.evaluate(unit).worst_loss
            loss_short = profile.evaluate(-unit).worst_loss
        except EngineError:
            # Too little or degenerate history for a stress model here: the gross cap stays
            # the constitution's until the next refit (``stress_fitted`` is False there).
            continue
        stop = min(n, start + cfg.fragility_refit)
        long_[start:stop], short[start:stop] = loss_long, loss_short
        fitted[start:stop] = True
    return long_, short, fitted


def _neutral(n: int, cfg: OverlayConfig) -> Overlay:
    return Overlay(
        stability=np.ones(n),
        level=np.zeros(n, dtype=np.int8),
        sentinel=np.zeros(n, dtype=np.int8),
        sentinel_ready=np.zeros(n, dtype=bool),
        stress_long=np.full(n, np.nan),
        stress_short=np.full(n, np.nan),
        stress_fitted=np.zeros(n, dtype=bool),
        config=cfg,
    )


def _optional(values: np.ndarray) -> np.ndarray | None:
    return None if not np.isfinite(values).any() else values


def _high_low(panel: BarPanel) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not (np.isfinite(panel.high).any() and np.isfinite(panel.low).any()):
        return None, None
    return panel.high, panel.low
