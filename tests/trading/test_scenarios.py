"""Stress scenarios: seeded, well-formed, stressed the way they say, real windows cut honestly."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from sovereign.brokers.models import Order, OrderStatus, Side
from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.market.bars import BarPanel
from sovereign.market.sources import load_sample
from sovereign.trading.scenarios import (
    CRASH_WINDOWS,
    Scenario,
    crash_windows,
    flash_crash,
    liquidity_drought,
    prolonged_bear,
    synthetic_scenarios,
    volatility_spike,
)

SMALL = {"n_symbols": 6, "history": 120, "stress": 100}


def arrays(panel: BarPanel) -> list[np.ndarray]:
    return [panel.open, panel.high, panel.low, panel.close, panel.volume]


def market_log_returns(panel: BarPanel) -> np.ndarray:
    return np.diff(np.log(panel.close), axis=0).mean(axis=1)


def test_same_seed_same_panels_other_seed_differs() -> None:
    a, b, c = (
        synthetic_scenarios(3, **SMALL),
        synthetic_scenarios(3, **SMALL),
        synthetic_scenarios(4, **SMALL),
    )
    assert [s.name for s in a] == [
        "flash_crash",
        "prolonged_bear",
        "volatility_x5_fake_breakouts",
        "liquidity_drought",
    ]
    for x, y, z in zip(a, b, c, strict=True):
        assert x.panel is not None and y.panel is not None and z.panel is not None
        assert all(
            np.array_equal(p, q) for p, q in zip(arrays(x.panel), arrays(y.panel), strict=True)
        )
        assert not np.array_equal(x.panel.close, z.panel.close)


@pytest.mark.parametrize("scenario", synthetic_scenarios(5, **SMALL), ids=lambda s: s.name)
def test_synthetic_panels_are_well_formed(scenario: Scenario) -> None:
    p = scenario.panel
    assert p is not None and scenario.covered and scenario.kind == "synthetic"
    assert (p.n_bars, p.n_symbols) == (220, 6) and scenario.judged_from == 120
    assert all(s.startswith("STRESS") for s in p.symbols)  # apart from any judged universe
    assert (p.low > 0).all() and (p.volume >= 1).all()
    assert (p.high >= np.maximum(p.open, p.close) - 1e-9).all()
    assert (p.low <= np.minimum(p.open, p.close) + 1e-9).all()
    assert p.timestamps.is_monotonic_increasing and p.timestamps.tz is not None


def test_flash_crash_drops_the_market_at_once() -> None:
    p = flash_crash(1, **SMALL).panel
    assert p is not None
    worst = market_log_returns(p)[120:].min()
    assert worst < np.log(0.78)  # the -25 % and -35 % crash bars
    assert market_log_returns(p)[:119].min() > np.log(0.9)  # the history is ordinary


def test_prolonged_bear_falls_through_the_stress_window() -> None:
    falls = []
    for seed in range(4):
        p = prolonged_bear(seed, n_symbols=8, history=120, stress=260).panel
        assert p is not None
        falls.append(market_log_returns(p)[120:].sum())
    assert max(falls) < np.log(0.9)  # every seed's equal-weight market loses > 10 %


def test_volatility_spike_multiplies_volatility() -> None:
    p = volatility_spike(2, **SMALL).panel
    assert p is not None
    rets = np.diff(np.log(p.close), axis=0)
    assert rets[120:].std() > 4 * rets[:119].std()


def test_liquidity_drought_makes_the_participation_cap_fill_orders_in_part() -> None:
    p = liquidity_drought(7, **SMALL).panel
    assert p is not None
    assert np.median(p.volume[120:]) < 0.01 * np.median(p.volume[:120])
    ex = PaperExchange(p.symbols, config=PaperConfig(), cash=1e7, seed=0)
    t = 150
    now = p.timestamps[t - 1].to_pydatetime()
    for i in range(t):
        ex.process_bar(
            i,
            p.timestamps[i].to_pydatetime(),
            p.open[i],
            p.high[i],
            p.low[i],
            p.close[i],
            p.volume[i],
            np.full(6, 0.01),
        )
    order = Order(
        client_order_id="drought-1",
        symbol=p.symbols[0],
        side=Side.BUY,
        quantity=5000.0,
        strategy="test",
        created_at=now,
    )
    ex.submit(order, now)
    fills = ex.process_bar(
        t,
        p.timestamps[t].to_pydatetime(),
        p.open[t],
        p.high[t],
        p.low[t],
        p.close[t],
        p.volume[t],
        np.full(6, 0.01),
    )
    cap = np.floor(0.1 * p.volume[t, 0])
    assert [f.quantity for f in fills] == [cap] and 0 < cap < 5000
    report = ex.get_order("drought-1")
    assert report is not None and report.status is OrderStatus.CANCELED  # DAY: the rest dies


def test_real_crash_windows_are_cut_with_their_lead_in() -> None:
    panel = load_sample("sp500")
    windows = crash_windows(panel, lead_in=253)
    assert [w.name for w in windows] == [name for name, *_ in CRASH_WINDOWS]
    for w in windows:
        assert w.covered and w.kind == "real" and w.panel is not None and w.source_rows is not None
        lo, hi = w.source_rows
        assert w.judged_from == 253 and w.panel.n_bars == hi - lo
        assert np.array_equal(w.panel.close, panel.close[lo:hi], equal_nan=True)
    gfc = windows[1].panel
    assert gfc is not None
    assert gfc.timestamps[253] >= datetime(2007, 10, 1, tzinfo=UTC) > gfc.timestamps[252]
    assert gfc.timestamps[-1] <= datetime(2009, 3, 31, tzinfo=UTC)


def test_a_window_the_data_does_not_span_is_reported_not_covered() -> None:
    indices = crash_windows(load_sample("indices"), lead_in=253)  # 1999-2018
    covered = {w.name: w.covered for w in indices}
    assert covered == {"crash_2000_2002": True, "crash_2008": True, "crash_2020": False}
    missing = indices[2]
    assert missing.panel is None and "not covered" in missing.description
    assert not any(w.covered for w in crash_windows(None, lead_in=253))
    # A window with too little history before it is not covered either.
    late = load_sample("sp500").between(datetime(2007, 6, 1, tzinfo=UTC), None)
    assert not crash_windows(late, lead_in=253)[1].covered
