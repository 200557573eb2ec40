"""Seeded synthetic markets for the gate's controls (:mod:`sovereign.trading.controls`).

Each builder returns a :class:`BarPanel` drawn from ``seed``; ``planted=True`` plants one
inefficiency, ``planted=False`` builds the same market without it (or with its opposite) so a
control can check that the gate accepts a rule *because of* the inefficiency. Bars are daily on
continuous calendar time from 2030-01-01 (see :mod:`sovereign.market.synthetic`), symbols are
``SYN00``, ``SYN01``, ...

Plants move prices inside bars: a bar's close (and high/low) carry the change, its open the
previous bar's level (:func:`sovereign.trading.scenarios.apply_factors`), so the strategies see
the move at the close and trade it at the next open, as they would in real data.
"""

from __future__ import annotations

import numpy as np

from sovereign.market.bars import BarPanel
from sovereign.market.synthetic import DEFAULT_REGIMES, RegimeSpec, generate
from sovereign.trading.scenarios import apply_factors

START = "2030-01-01"


def market(
    seed: int, n_bars: int, n_symbols: int, regimes: tuple[RegimeSpec, ...] | None = None
) -> BarPanel:
    """An ordinary regime-switching market (:func:`sovereign.market.synthetic.generate`)."""
    return generate(symbols=n_symbols, n_bars=n_bars, seed=seed, start=START, regimes=regimes).panel


def with_close_path(panel: BarPanel, column: int, log_returns: np.ndarray) -> BarPanel:
    """``panel`` with symbol ``column``'s close-to-close log returns replaced by
    ``log_returns`` (n_bars,), starting from its first close; other symbols unchanged."""
    own = np.log(panel.close[:, column])
    target = own[0] + np.cumsum(np.concatenate([[0.0], log_returns[1:]]))
    factors = np.ones(panel.close.shape)
    factors[:, column] = np.exp(target - own)
    return apply_factors(panel, factors)


def _with_volume(panel: BarPanel, volume: np.ndarray) -> BarPanel:
    return BarPanel(
        timestamps=panel.timestamps,
        symbols=panel.symbols,
        open=panel.open,
        high=panel.high,
        low=panel.low,
        close=panel.close,
        volume=volume,
        features=panel.features,
        source=panel.source,
    )


def fake_breakout_market(
    seed: int, n_bars: int, *, planted: bool = True, fakes: tuple[int, ...] = (6, 7, 8, 9)
) -> BarPanel:
    """10 symbols; with ``planted`` the ``fakes`` columns are rising stocks (+0.2 %/bar) whose
    every breakout above its 20-bar high is followed by four bars of -3 %: the breakout buyer
    is always wrong about them."""
    panel = market(seed, n_bars, 10)
    if not planted:
        return panel
    rng = np.random.default_rng([seed, 7])
    for j in fakes:
        r = rng.normal(0.002, 0.015, n_bars)
        level = np.zeros(n_bars)
        forced = 0
        for t in range(1, n_bars):
            if forced:
                r[t] = -0.03 + rng.normal(0.0, 0.004)
                forced -= 1
            level[t] = level[t - 1] + r[t]
            if not forced and t > 21 and level[t] > level[t - 20 : t].max() + 0.005:
                forced = 4
        panel = with_close_path(panel, j, np.diff(level, prepend=0.0))
    return panel


def high_atr_market(
    seed: int, n_bars: int, *, planted: bool = True, wild: tuple[int, ...] = (6, 7, 8, 9)
) -> BarPanel:
    """10 symbols; the ``wild`` columns are replaced by 60 %-volatility stocks (ATR about 3.5 %
    of price, against about 1 % for the others) drifting -60 %/year when ``planted`` and
    +60 %/year when not: high ATR itself is not the inefficiency, high ATR with a losing drift
    is."""
    panel = market(seed, n_bars, 10)
    rng = np.random.default_rng([seed, 9])
    drift, sigma, dt = (-0.6 if planted else 0.6), 0.6, 1.0 / 365.25
    for j in wild:
        r = (drift - 0.5 * sigma**2) * dt + sigma * np.sqrt(dt) * rng.standard_normal(n_bars)
        panel = with_close_path(panel, j, r)
    return panel


def volatile_regime_market(seed: int, n_bars: int, *, planted: bool = True) -> BarPanel:
    """12 symbols under the default regimes except the volatile one (45 % volatility, stays
    60 bars), which drifts -80 %/year when ``planted`` and +80 %/year when not: whatever is
    bought in a volatile market loses when planted."""
    volatile = RegimeSpec(
        name="volatile",
        drift=-0.8 if planted else 0.8,
        volatility=0.45,
        mean_duration=60,
        volume_multiplier=2.5,
    )
    return market(seed, n_bars, 12, regimes=(*DEFAULT_REGIMES[:3], volatile))


def weekday_gap_market(seed: int, n_bars: int, *, planted: bool = True) -> BarPanel:
    """16 symbols; when ``planted`` every Thursday opens 4 % above Wednesday's close and closes
    where it would have anyway, so an entry decided on Wednesday pays 4 % too much."""
    panel = market(seed, n_bars, 16)
    if not planted:
        return panel
    thursday = np.array([ts.weekday() == 3 for ts in panel.timestamps])
    gap = np.where(thursday, 1.04, 1.0)[:, None]
    opens = panel.open * gap
    return BarPanel(
        timestamps=panel.timestamps,
        symbols=panel.symbols,
        open=opens,
        high=np.fmax(panel.high, opens),
        low=np.fmin(panel.low, opens),
        close=panel.close,
        volume=panel.volume,
        features=panel.features,
        source=panel.source,
    )


def spike_market(seed: int, n_bars: int, *, planted: bool = True) -> BarPanel:
    """10 symbols with a +6 % day on three times the usual volume about every 25 bars each;
    when ``planted`` each spike is given back over the next three bars (-3 % a bar), when not
    the level simply stays up. Chasing the spike day loses only when planted."""
    panel = market(seed, n_bars, 10)
    rng = np.random.default_rng([seed, 13])
    log_factor = np.zeros(panel.close.shape)
    volume = panel.volume.copy()
    for j in range(panel.n_symbols):
        t = 0
        while True:
            t += int(rng.geometric(1 / 25)) + 3
            if t + 3 >= n_bars:
                break
            log_factor[t:, j] += np.log(1.06)
            volume[t, j] *= 3.0
            if planted:
                for k in range(1, 4):
                    log_factor[t + k :, j] += np.log(0.97)
    return _with_volume(apply_factors(panel, np.exp(log_factor)), volume)


def trending_market(seed: int, n_bars: int) -> BarPanel:
    """10 symbols, long uptrends (+60 %/year, 250-bar stays) with short pullbacks: breakouts
    repeat day after day, the setting where a churning rule trades the most."""
    regimes = (
        RegimeSpec(name="trending_up", drift=0.6, volatility=0.15, mean_duration=250),
        RegimeSpec(
            name="ranging", drift=0.05, volatility=0.12, mean_duration=60, mean_reversion=10.0,
            volume_multiplier=0.8,
        ),
        RegimeSpec(name="volatile", drift=0.0, volatility=0.45, mean_duration=25, volume_multiplier=2.0),
        RegimeSpec(
            name="trending_down", drift=-0.3, volatility=0.2, mean_duration=40, volume_multiplier=1.3
        ),
    )  # fmt: skip
    return market(seed, n_bars, 10, regimes=regimes)


def slides_market(seed: int, n_bars: int) -> BarPanel:
    """10 symbols with market-wide slides: about every 120 bars, eight bars of -3 % for every
    symbol at once (-22 %). A book without a drawdown circuit breaker rides them down."""
    panel = market(seed, n_bars, 10)
    rng = np.random.default_rng([seed, 17])
    log_factor = np.zeros(panel.close.shape)
    t = 0
    while True:
        t += int(rng.integers(60, 180))
        if t + 8 >= n_bars:
            break
        for k in range(8):
            log_factor[t + k :, :] += np.log(0.97)
    return apply_factors(panel, np.exp(log_factor))


def regime_mix_market(seed: int, n_bars: int) -> BarPanel:
    """12 symbols whose volatile regime loses (-90 %/year) and whose calm ranging regime gains
    (+45 %/year, below the +90 %/year uptrend so it is still labelled ranging): skipping
    entries in both regimes helps on average and costs the ranging regime its gains."""
    regimes = (
        RegimeSpec(name="trending_up", drift=0.9, volatility=0.15, mean_duration=100),
        RegimeSpec(
            name="trending_down", drift=-0.5, volatility=0.22, mean_duration=60, volume_multiplier=1.3
        ),
        RegimeSpec(name="ranging", drift=0.45, volatility=0.10, mean_duration=100, volume_multiplier=0.8),
        RegimeSpec(name="volatile", drift=-0.9, volatility=0.45, mean_duration=60, volume_multiplier=2.5),
    )  # fmt: skip
    return market(seed, n_bars, 12, regimes=regimes)


__all__ = [
    "START",
    "fake_breakout_market",
    "high_atr_market",
    "market",
    "regime_mix_market",
    "slides_market",
    "spike_market",
    "trending_market",
    "volatile_regime_market",
    "weekday_gap_market",
    "with_close_path",
]
