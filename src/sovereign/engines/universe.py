"""Which symbols may be traded: liquidity and price filters, stability and fragility penalties.

:func:`select_universe` filters every symbol (all reasons are collected, not just the first),
ranks the survivors by

    score = liquidity_rank − stability_penalty·(1 − stability) − fragility_penalty·stressed_loss

and keeps the best ``max_size``. ``liquidity_rank`` is the symbol's percentile rank in [0, 1]
of median dollar volume among the survivors (0.5 for everyone when volume is unavailable or there
is one survivor). ``stability`` (per-asset score in [0, 1], 1 = stable) and ``stressed_loss``
(per-asset worst stressed loss from the fragility engine, a positive fraction: 0.35 = −35%) are
passed in as arrays; a term whose array is not given is left out. A symbol whose stability or
stressed loss is NaN is excluded (no estimate, no trading). Ties are broken by symbol name.

Closes-only data (``volume`` None or all NaN) skips the liquidity filter, and the selection says
so in ``notes`` and ``liquidity_checked=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.stats import rankdata

from sovereign.engines.guard import check_array
from sovereign.errors import EngineError

__all__ = [
    "Exclusion",
    "ExclusionReason",
    "UniverseConfig",
    "UniverseSelection",
    "select_universe",
]

_SOURCE = "universe.select_universe"


@dataclass(frozen=True, kw_only=True, slots=True)
class UniverseConfig:
    """Universe filters and ranking (prices in the quote currency).

    ``min_dollar_volume``: minimum median of close × volume per bar over the last
    ``liquidity_window`` bars (a symbol with fewer than half of those bars' volume is excluded
    as NO_VOLUME). ``min_price``: minimum last close. ``stale_bars``: a last close equal to each
    of the previous ``stale_bars`` closes is a stale feed (0 disables the check).
    ``stability_penalty`` / ``fragility_penalty``: weights in the score (see the module).
    ``max_stressed_loss``: exclude symbols whose stressed loss exceeds it (None: penalty only).
    ``max_size``: how many symbols are kept, best score first.
    """

    max_size: int = 20
    min_dollar_volume: float = 1e6
    liquidity_window: int = 20
    min_price: float = 5.0
    stale_bars: int = 5
    stability_penalty: float = 0.5
    fragility_penalty: float = 1.0
    max_stressed_loss: float | None = None

    def __post_init__(self) -> None:
        ok = (
            self.max_size >= 1
            and self.min_dollar_volume >= 0
            and self.liquidity_window >= 1
            and self.min_price >= 0
            and self.stale_bars >= 0
            and self.stability_penalty >= 0
            and self.fragility_penalty >= 0
            and (self.max_stressed_loss is None or self.max_stressed_loss >= 0)
        )
        if not ok:
            raise EngineError(f"invalid configuration {self}", source="universe.config")


class ExclusionReason(StrEnum):
    NO_PRICE = "no_price"  # the last close is NaN
    STALE = "stale"  # the last close has not moved for stale_bars bars
    LOW_PRICE = "low_price"
    NO_VOLUME = "no_volume"  # volume missing for this symbol while others have it
    ILLIQUID = "illiquid"
    NO_RISK_ESTIMATE = "no_risk_estimate"  # stability or stressed loss is NaN
    FRAGILE = "fragile"  # stressed loss above max_stressed_loss
    RANKED_OUT = "ranked_out"  # passed the filters, below the best max_size


@dataclass(frozen=True, kw_only=True, slots=True)
class Exclusion:
    """Why ``symbol`` is not in the universe: every failed filter, and a sentence with figures."""

    symbol: str
    reasons: tuple[ExclusionReason, ...]
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class UniverseSelection:
    """The result: ``eligible`` best score first (at most ``max_size``); ``scores`` for every
    symbol that passed the filters (eligible and ranked out); ``excluded`` in input order;
    ``dollar_volume``: median dollar volume per symbol where measured; ``notes``: what was
    skipped and why."""

    eligible: tuple[str, ...]
    scores: Mapping[str, float]
    excluded: tuple[Exclusion, ...]
    dollar_volume: Mapping[str, float]
    liquidity_checked: bool
    notes: tuple[str, ...]

    def reasons(self, symbol: str) -> tuple[ExclusionReason, ...]:
        """The exclusion reasons of ``symbol`` (empty when it is eligible or unknown)."""
        return next((e.reasons for e in self.excluded if e.symbol == symbol), ())


def _optional(name: str, values: np.ndarray | None, n: int, high: float) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise EngineError(f"{name}: shape {arr.shape}, expected ({n},)", source=_SOURCE)
    if np.isinf(arr).any():
        raise EngineError(f"{name}: infinite value", source=_SOURCE)
    check_array(f"{_SOURCE}.{name}", arr[~np.isnan(arr)], low=0.0, high=high)
    return arr


def _validate(
    close: np.ndarray, volume: np.ndarray | None, symbols: Sequence[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise EngineError(
            f"expected closes (n_bars >= 1, n_assets >= 1), got {c.shape}", source=_SOURCE
        )
    if len(symbols) != c.shape[1] or len(set(symbols)) != len(symbols):
        raise EngineError("symbols must be unique, one per close column", source=_SOURCE)
    if np.isinf(c).any():
        raise EngineError("close contains an infinite value", source=_SOURCE)
    if volume is None:
        return c, None
    v = np.asarray(volume, dtype=np.float64)
    if v.shape != c.shape:
        raise EngineError(f"volume shape {v.shape} differs from close {c.shape}", source=_SOURCE)
    if np.isinf(v).any() or (v < 0).any():
        raise EngineError("volume contains an infinite or negative value", source=_SOURCE)
    return c, (None if np.isnan(v).all() else v)


def _liquidity_rank(dollar_volume: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] (average rank for ties); 0.5 for a single value."""
    n = dollar_volume.size
    if n <= 1:
        return np.full(n, 0.5)
    ranks = np.asarray(rankdata(dollar_volume, method="average"), dtype=np.float64)
    return (ranks - 1.0) / (n - 1)


def select_universe(  # noqa: C901 - one pass of independent filters, read top to bottom
    close: np.ndarray,
    volume: np.ndarray | None,
    *,
    symbols: Sequence[str],
    stability: np.ndarray | None = None,
    fragility: np.ndarray | None = None,
    config: UniverseConfig | None = None,
) -> UniverseSelection:
    """Filter and rank the symbols; see the module docstring for the score.

    ``close``: ndarray (n_bars, n_assets), prices, NaN where a symbol has no bar; the last row is
    the decision bar. ``volume``: same shape, shares per bar, or None (closes-only data).
    ``symbols``: (n_assets,) names. ``stability``: (n_assets,) in [0, 1] or NaN. ``fragility``:
    (n_assets,) stressed loss ≥ 0 as a fraction, or NaN. EngineError on malformed input
    (wrong shapes, infinities, negative volume, out-of-range scores).
    """
    cfg = config or UniverseConfig()
    c, v = _validate(close, volume, symbols)
    stab = _optional("stability", stability, c.shape[1], 1.0)
    loss = _optional("fragility", fragility, c.shape[1], np.inf)
    notes: list[str] = []
    reasons: dict[int, list[ExclusionReason]] = {j: [] for j in range(c.shape[1])}
    details: dict[int, list[str]] = {j: [] for j in range(c.shape[1])}

    def exclude(j: int, reason: ExclusionReason, detail: str) -> None:
        reasons[j].append(reason)
        details[j].append(detail)

    last = c[-1]
    for j in range(c.shape[1]):
        if np.isnan(last[j]):
            exclude(j, ExclusionReason.NO_PRICE, "no close on the last bar")
            continue
        if last[j] < cfg.min_price:
            exclude(j, ExclusionReason.LOW_PRICE, f"last close {last[j]:.4g} < {cfg.min_price:g}")
        prev = c[-cfg.stale_bars - 1 : -1, j]
        if cfg.stale_bars and c.shape[0] > cfg.stale_bars and (prev == last[j]).all():
            exclude(j, ExclusionReason.STALE, f"close unchanged for {cfg.stale_bars} bars")

    dollar: dict[str, float] = {}
    if v is None:
        notes.append("volume unavailable (closes-only data): liquidity filter skipped")
    else:
        window = slice(-cfg.liquidity_window, None)
        dv = c[window] * v[window]
        count = np.isfinite(dv).sum(axis=0)
        enough = count * 2 >= dv.shape[0]
        median = np.full(c.shape[1], np.nan)
        if enough.any():
            median[enough] = np.nanmedian(dv[:, enough], axis=0)
        for j in range(c.shape[1]):
            if not enough[j]:
                exclude(j, ExclusionReason.NO_VOLUME, f"volume on {count[j]}/{dv.shape[0]} bars")
                continue
            dollar[symbols[j]] = float(median[j])
            if median[j] < cfg.min_dollar_volume:
                exclude(
                    j,
                    ExclusionReason.ILLIQUID,
                    f"median dollar volume {median[j]:.3g} < {cfg.min_dollar_volume:.3g}",
                )

    for name, arr in (("stability", stab), ("stressed loss", loss)):
        if arr is not None:
            for k in np.flatnonzero(np.isnan(arr)).tolist():
                exclude(k, ExclusionReason.NO_RISK_ESTIMATE, f"no {name} estimate")
    if loss is not None and cfg.max_stressed_loss is not None:
        for k in np.flatnonzero(loss > cfg.max_stressed_loss).tolist():
            exclude(
                k,
                ExclusionReason.FRAGILE,
                f"stressed loss {loss[k]:.1%} > {cfg.max_stressed_loss:.1%}",
            )

    passed = np.array([j for j in range(c.shape[1]) if not reasons[j]], dtype=int)
    if v is None:
        liq = np.full(passed.size, 0.5)
    else:
        liq = _liquidity_rank(np.array([dollar[symbols[j]] for j in passed]))
    score = liq.copy()
    if stab is not None:
        score -= cfg.stability_penalty * (1.0 - stab[passed])
    if loss is not None:
        score -= cfg.fragility_penalty * loss[passed]
    score = check_array("universe.scores", score)
    ranked = sorted(
        zip(passed.tolist(), score.tolist(), strict=True), key=lambda t: (-t[1], symbols[t[0]])
    )
    for j, s in ranked[cfg.max_size :]:
        exclude(j, ExclusionReason.RANKED_OUT, f"score {s:.4f} below the best {cfg.max_size}")
    return UniverseSelection(
        eligible=tuple(symbols[j] for j, _ in ranked[: cfg.max_size]),
        scores={symbols[j]: s for j, s in ranked},
        excluded=tuple(
            Exclusion(symbol=symbols[j], reasons=tuple(reasons[j]), detail="; ".join(details[j]))
            for j in range(c.shape[1])
            if reasons[j]
        ),
        dollar_volume=dollar,
        liquidity_checked=v is not None,
        notes=tuple(notes),
    )
