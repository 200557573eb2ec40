"""Stress scenarios for the backtest gate: seeded data builders that return a :class:`BarPanel`.

Two kinds:

- **real** crash windows cut from a given panel (the dot-com bust 2000–02, the 2008 financial
  crisis, the 2020 pandemic crash), each with a lead-in of history before it so strategies are
  warmed up when the crash starts. A panel that does not span a window (with its lead-in) reports
  it as not covered instead of inventing data.
- **synthetic** stresses built on :func:`sovereign.market.synthetic.generate`: an injected flash
  crash, a prolonged bear market, volatility ×5 with fake breakouts, and a liquidity drought
  (volume cut so the paper exchange's participation cap, ``PaperConfig.participation_cap``
  shares of a bar's volume per order per bar, turns orders into partial fills).

Every synthetic panel is ``history`` bars of an ordinary regime-switching market followed by
``stress`` bars of the stress; ``judged_from`` is the first stressed bar. Everything is drawn
from ``seed`` (each scenario from its own child of ``SeedSequence(seed)``): the same seed gives
the same panels. Panels are small (12 symbols × 560 bars by default) so that a gate verdict can
afford to run every scenario for both the baseline and the candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sovereign.market.bars import BarPanel
from sovereign.market.synthetic import RegimeSpec, generate, with_flash_crash, with_volatility

#: Real crash windows: (name, first day, last day, description).
CRASH_WINDOWS: tuple[tuple[str, str, str, str], ...] = (
    (
        "crash_2000_2002",
        "2000-03-01",
        "2002-10-31",
        "dot-com bust: March 2000 peak to the October 2002 trough",
    ),
    (
        "crash_2008",
        "2007-10-01",
        "2009-03-31",
        "global financial crisis: October 2007 peak to the March 2009 trough",
    ),
    (
        "crash_2020",
        "2020-02-01",
        "2020-06-30",
        "pandemic crash: February 2020 peak, the March collapse and the rebound",
    ),
)

#: The bear market's regimes: long downtrends broken by short volatile spells.
BEAR_REGIMES: tuple[RegimeSpec, ...] = (
    RegimeSpec(name="trending_down", drift=-0.55, volatility=0.22, mean_duration=150),
    RegimeSpec(
        name="volatile", drift=-0.3, volatility=0.5, mean_duration=25, volume_multiplier=2.0
    ),
)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Scenario:
    """One stress test.

    ``panel``: the bars to backtest (lead-in history, then the stress), None when not covered.
    ``judged_from``: first bar of ``panel`` that belongs to the stress (metrics start there).
    ``source_rows``: for a real window, rows ``[lo, hi)`` of the source panel that ``panel`` is
    (so precomputed features and regimes of the source can be cut the same way); None for
    synthetic data. ``kind``: "real" or "synthetic".
    """

    name: str
    description: str
    kind: str
    panel: BarPanel | None
    judged_from: int = 0
    source_rows: tuple[int, int] | None = None

    @property
    def covered(self) -> bool:
        return self.panel is not None


# -- real windows ------------------------------------------------------------------------------


def crash_windows(panel: BarPanel | None, *, lead_in: int) -> list[Scenario]:
    """The :data:`CRASH_WINDOWS` cut from ``panel``, each with ``lead_in`` bars of history.

    A window is covered when ``panel`` holds every day of it and at least ``lead_in`` bars
    before its first day; otherwise its Scenario has ``panel=None`` and says why.
    """
    out = []
    for name, first, last, text in CRASH_WINDOWS:
        start = pd.Timestamp(first, tz="UTC")
        end = pd.Timestamp(last, tz="UTC")
        if panel is None or panel.n_bars == 0:
            out.append(
                Scenario(
                    name=name,
                    description=f"{text}; not covered: no real data given",
                    kind="real",
                    panel=None,
                )
            )
            continue
        idx = panel.timestamps
        lo = int(idx.searchsorted(start, side="left"))
        hi = int(idx.searchsorted(end, side="right"))
        if idx[0] > start or idx[-1] < end or lo < lead_in or hi <= lo:
            span = f"{idx[0]:%Y-%m-%d}..{idx[-1]:%Y-%m-%d}"
            out.append(
                Scenario(
                    name=name,
                    description=f"{text}; not covered: the data spans {span} and the window needs "
                    f"{lead_in} bars of history before {first}",
                    kind="real",
                    panel=None,
                )
            )
            continue
        out.append(
            Scenario(
                name=name,
                description=text,
                kind="real",
                panel=panel.slice(lo - lead_in, hi),
                judged_from=lead_in,
                source_rows=(lo - lead_in, hi),
            )
        )
    return out


# -- synthetic stresses ------------------------------------------------------------------------


def _seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def _names(n_symbols: int) -> tuple[str, ...]:
    """Scenario symbols are named apart from any real or synthetic universe (STRESS00, ...), so
    a rule about a named symbol of the judged data does not reach into the stress tests."""
    return tuple(f"STRESS{j:02d}" for j in range(n_symbols))


def _base(seed: int, n_symbols: int, n_bars: int, start: str) -> BarPanel:
    return generate(symbols=_names(n_symbols), n_bars=n_bars, seed=seed, start=start).panel


def flash_crash(
    seed: int,
    *,
    n_symbols: int = 12,
    history: int = 300,
    stress: int = 260,
    start: str = "2030-01-01",
) -> Scenario:
    """Two market-wide flash crashes in the stress window: -25 % an eighth of the way in,
    recovering over 15 bars, then -35 % half way, recovering over 40 bars (prices stay lower
    for the whole recovery, not one bar). ``stress`` must be at least 16 bars."""
    if stress < 16:
        raise ValueError(f"flash_crash needs stress >= 16 bars, got {stress}")
    panel = _base(_seed(seed, 1), n_symbols, history + stress, start)
    first, second = history + stress // 8, history + stress // 2
    panel = with_flash_crash(panel, at=first, depth=0.25, recovery_bars=min(15, stress // 8))
    panel = with_flash_crash(panel, at=second, depth=0.35, recovery_bars=min(40, stress // 2))
    return Scenario(
        name="flash_crash",
        description="injected market-wide flash crashes (-25 % and -35 %) with slow recoveries",
        kind="synthetic",
        panel=_renamed(panel, "scenario:flash_crash", seed),
        judged_from=history,
    )


def prolonged_bear(
    seed: int,
    *,
    n_symbols: int = 12,
    history: int = 300,
    stress: int = 260,
    start: str = "2030-01-01",
) -> Scenario:
    """An ordinary market followed by a long bear market (downtrends, short volatile spells)."""
    head = _base(_seed(seed, 2), n_symbols, history, start)
    bear = generate(
        symbols=head.symbols,
        n_bars=stress,
        seed=_seed(seed, 3),
        start=head.timestamps[-1] + (head.timestamps[-1] - head.timestamps[-2]),
        regimes=BEAR_REGIMES,
        correlation=0.75,
    ).panel
    return Scenario(
        name="prolonged_bear",
        description="a synthetic bear market: long downtrends (-55 %/year) and volatile spells",
        kind="synthetic",
        panel=_renamed(_stitch(head, bear), "scenario:prolonged_bear", seed),
        judged_from=history,
    )


def volatility_spike(
    seed: int,
    *,
    n_symbols: int = 12,
    history: int = 300,
    stress: int = 260,
    start: str = "2030-01-01",
    factor: float = 5.0,
    fake_breakouts: float = 0.03,
) -> Scenario:
    """Volatility ×``factor`` over the stress window plus fake breakouts: in a ``fake_breakouts``
    share of (bar, symbol) cells the close jumps up by three of the window's bar deviations and
    gives it all back (and a bit more) over the next three bars."""
    sub = np.random.default_rng(_seed(seed, 4))
    panel = _base(_seed(seed, 5), n_symbols, history + stress, start)
    n = panel.n_bars
    panel = with_volatility(panel, factor, start=history, stop=n)
    rets = np.diff(np.log(panel.close[history:]), axis=0)
    bar_sd = np.nanstd(rets, axis=0)
    factors = np.ones(panel.close.shape)
    cells = np.argwhere(sub.random((stress - 4, n_symbols)) < fake_breakouts)
    for t_rel, j in cells:
        t = history + int(t_rel)
        jump = 3.0 * float(bar_sd[j])
        for k, share in enumerate((1.0, 0.6, -0.3)):
            factors[t + k, j] *= np.exp(share * jump)
    panel = apply_factors(panel, factors)
    return Scenario(
        name="volatility_x5_fake_breakouts",
        description=f"volatility ×{factor:g} with fake breakouts in {fake_breakouts:.0%} of bars",
        kind="synthetic",
        panel=_renamed(panel, "scenario:volatility_spike", seed),
        judged_from=history,
    )


def liquidity_drought(
    seed: int,
    *,
    n_symbols: int = 12,
    history: int = 300,
    stress: int = 260,
    start: str = "2030-01-01",
    volume_factor: float = 0.002,
) -> Scenario:
    """Volume ×``volume_factor`` over the stress window while prices keep moving: a bar then
    trades a few hundred to a few thousand shares, so orders of an ordinary size are filled only
    in part by the participation cap (the rest of a DAY order is canceled)."""
    panel = _base(_seed(seed, 6), n_symbols, history + stress, start)
    volume = panel.volume.copy()
    volume[history:] = np.maximum(1.0, np.round(volume[history:] * volume_factor))
    dry = BarPanel(
        timestamps=panel.timestamps,
        symbols=panel.symbols,
        open=panel.open,
        high=panel.high,
        low=panel.low,
        close=panel.close,
        volume=volume,
        features=panel.features,
        source="scenario:liquidity_drought",
    )
    return Scenario(
        name="liquidity_drought",
        description=f"volume ×{volume_factor:g}: orders hit the participation cap and fill in part",
        kind="synthetic",
        panel=_renamed(dry, "scenario:liquidity_drought", seed),
        judged_from=history,
    )


def synthetic_scenarios(
    seed: int, *, n_symbols: int = 12, history: int = 300, stress: int = 260
) -> list[Scenario]:
    """Every synthetic stress, seeded by ``seed``."""
    return [
        build(seed, n_symbols=n_symbols, history=history, stress=stress)
        for build in (flash_crash, prolonged_bear, volatility_spike, liquidity_drought)
    ]


# -- helpers -----------------------------------------------------------------------------------


def _renamed(panel: BarPanel, source: str, seed: int) -> BarPanel:
    return BarPanel(
        timestamps=panel.timestamps,
        symbols=panel.symbols,
        open=panel.open,
        high=panel.high,
        low=panel.low,
        close=panel.close,
        volume=panel.volume,
        features=panel.features,
        source=f"{source}:{seed}",
    )


def apply_factors(panel: BarPanel, factors: np.ndarray) -> BarPanel:
    """Multiply bar ``t``'s close, high and low by ``factors[t]`` and its open by
    ``factors[t - 1]`` (the move happens within the bar), widening high/low to contain both."""
    prev = np.vstack([np.ones((1, factors.shape[1])), factors[:-1]])
    o = panel.open * prev
    c = panel.close * factors
    high = np.fmax(panel.high * factors, np.fmax(o, c))
    low = np.fmin(panel.low * factors, np.fmin(o, c))
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


def _stitch(head: BarPanel, tail: BarPanel) -> BarPanel:
    """``tail`` appended to ``head``: each symbol's tail prices are scaled so that its first
    open equals head's last close; tail volume is scaled to head's median volume per symbol."""
    if head.symbols != tail.symbols:
        raise ValueError("panels to stitch must have the same symbols")
    scale = head.close[-1] / tail.open[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        vol_scale = np.nanmedian(head.volume, axis=0) / np.nanmedian(tail.volume, axis=0)
    vol_scale = np.where(np.isfinite(vol_scale), vol_scale, 1.0)
    return BarPanel(
        timestamps=pd.DatetimeIndex(head.timestamps.append(tail.timestamps)),
        symbols=head.symbols,
        open=np.vstack([head.open, tail.open * scale]),
        high=np.vstack([head.high, tail.high * scale]),
        low=np.vstack([head.low, tail.low * scale]),
        close=np.vstack([head.close, tail.close * scale]),
        volume=np.vstack([head.volume, np.round(tail.volume * vol_scale)]),
        features=head.features,
        source=head.source,
    )


__all__ = [
    "BEAR_REGIMES",
    "CRASH_WINDOWS",
    "Scenario",
    "apply_factors",
    "crash_windows",
    "flash_crash",
    "liquidity_drought",
    "prolonged_bear",
    "synthetic_scenarios",
    "volatility_spike",
]
