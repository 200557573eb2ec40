"""The engines' overlay: causal per-bar limits, the Supervisor's use of them, and standing down
on a corrupted engine output."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from sovereign.constitution import Constitution
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample
from sovereign.market.synthetic import generate
from sovereign.trading.backtest import BacktestConfig, RegimeConfig, prepare, run_backtest
from sovereign.trading.catalog import build
from sovereign.trading.events import Decision, ListSink
from sovereign.trading.overlay import (
    ExposureLimits,
    Overlay,
    OverlayConfig,
    compute_overlay,
    filled_returns,
)
from sovereign.trading.supervisor import Supervisor

NOW = datetime(2024, 3, 1, tzinfo=UTC)
MARKET = generate(symbols=6, n_bars=900, seed=3, start="2015-01-01").panel
REGIME = RegimeConfig(min_history=300, refit_every=250)


def overlay_of(n: int, **arrays: np.ndarray) -> Overlay:
    base = {
        "stability": np.full(n, 0.8),
        "level": np.zeros(n, dtype=np.int8),
        "sentinel": np.zeros(n, dtype=np.int8),
        "sentinel_ready": np.ones(n, dtype=bool),
        "stress_long": np.full(n, 0.2),
        "stress_short": np.full(n, 0.1),
        "stress_fitted": np.ones(n, dtype=bool),
    }
    base.update(arrays)
    return Overlay(**base)


def test_limits_scale_with_stability_and_the_sentinel() -> None:
    ov = overlay_of(
        4,
        level=np.array([0, 1, 2, 0], dtype=np.int8),
        sentinel=np.array([0, 0, 1, 2], dtype=np.int8),
    )
    kw = {"drawdown": 0.0, "max_drawdown": 0.1, "long_gross": 0.0, "short_gross": 0.0}
    stable, fragile, unstable_halved, stand_down = (ov.limits(i, **kw) for i in range(4))
    assert (stable.scale, stable.bucket, stable.stand_down) == (1.0, "stable", False)
    assert (fragile.scale, fragile.bucket) == (0.75, "fragile")
    assert unstable_halved.scale == 0.5 and "halve" in unstable_halved.reason
    assert stand_down.stand_down and "stand down" in stand_down.reason
    assert list(ov.buckets()) == ["stable", "fragile", "unstable", "stable"]


def test_stress_room_is_what_the_drawdown_budget_leaves() -> None:
    ov = overlay_of(1)  # 20% stressed loss per unit long, 10% per unit short; budget x2
    lim = ov.limits(0, drawdown=0.04, max_drawdown=0.10, long_gross=0.3, short_gross=0.2)
    left = 2 * (0.10 - 0.04) - 0.3 * 0.2 - 0.2 * 0.1
    assert lim.stress_left == pytest.approx(left)
    assert lim.long_room == pytest.approx(left / 0.2)
    assert lim.short_room == pytest.approx(left / 0.1)
    after = lim.consume(1, 0.1)
    assert after.long_room == pytest.approx(lim.long_room - 0.1)
    assert (
        ov.limits(0, drawdown=0.1, max_drawdown=0.1, long_gross=0.5, short_gross=0).long_room == 0
    )
    unfitted = overlay_of(1, stress_fitted=np.zeros(1, dtype=bool), stress_long=np.full(1, np.nan))
    assert math.isinf(
        unfitted.limits(0, drawdown=0.09, max_drawdown=0.1, long_gross=2, short_gross=0).long_room
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("stability", np.nan), ("stability", 1.5), ("sentinel", 7), ("stress_long", -0.1)],
)
def test_a_corrupt_engine_output_raises(field: str, value: float) -> None:
    ov = overlay_of(2)
    array = getattr(ov, field).copy()
    array[1] = value
    bad = replace(ov, **{field: array})
    bad.limits(0, drawdown=0, max_drawdown=0.1, long_gross=0, short_gross=0)  # bar 0 is fine
    with pytest.raises(EngineError, match="overlay"):
        bad.limits(1, drawdown=0, max_drawdown=0.1, long_gross=0, short_gross=0)


def test_the_supervisor_applies_the_limits() -> None:
    sup = Supervisor(constitution=Constitution())
    entry = {"now": NOW, "strategy": "s", "symbol": "AAA", "confidence": 0.9, "gross_exposure": 0}
    assert sup.check_entry(**entry).max_fraction == pytest.approx(0.05)
    sup.set_limits(ExposureLimits(scale=0.5, reasons=("stability unstable",)))
    check = sup.check_entry(**entry)
    assert check.approved and check.max_fraction == pytest.approx(0.025)
    assert "stability unstable" in check.reason
    sup.set_limits(ExposureLimits(stress_left=0.004, loss_long=0.2, loss_short=0.1))
    assert sup.check_entry(**entry).max_fraction == pytest.approx(0.02)  # 0.004 / 0.2
    assert sup.check_entry(**entry, side=-1).max_fraction == pytest.approx(0.04)
    sup.record_entry(1, 0.02)
    refused = sup.check_entry(**entry)
    assert not refused.approved and refused.reason.startswith("stress limit")
    sup.stand_down("engine output unusable")
    refused = sup.check_entry(**entry, side=-1)
    assert not refused.approved and refused.reason == "engines: engine output unusable"


def test_the_overlay_is_causal_and_seeded() -> None:
    panel = load_sample("indices")
    full = compute_overlay(panel, seed=5)
    cut = compute_overlay(panel.slice(0, 1500), seed=5)
    for name, values in cut.to_arrays().items():
        np.testing.assert_array_equal(values, full.to_arrays()[name][:1500], err_msg=name)
    assert full.sentinel_ready.any() and full.stress_fitted.any()
    assert {"stable", "fragile", "unstable"} <= set(full.buckets())
    # 2008-10: unstable, the sentinel alarmed, and the stress loss per unit is large
    i = int(panel.timestamps.searchsorted(datetime(2008, 10, 15, tzinfo=UTC)))
    assert full.buckets()[i] == "unstable" and full.sentinel[i] >= 1
    assert full.stress_long[i] > 0.1


def test_filled_returns_use_the_cross_section_for_gaps() -> None:
    close = np.array([[10.0, np.nan], [11.0, 20.0], [11.0, 22.0], [np.nan, np.nan]])
    r = filled_returns(close)
    np.testing.assert_allclose(r[1], [0.1, 0.1])  # the new listing takes the bar's mean
    np.testing.assert_allclose(r[2], [0.0, 0.1])
    np.testing.assert_allclose(r[3], [0.0, 0.0])  # nothing traded: 0
    assert np.isfinite(r).all()


def test_a_disabled_overlay_is_neutral() -> None:
    ov = compute_overlay(MARKET, OverlayConfig(enabled=False))
    lim = ov.limits(500, drawdown=0.09, max_drawdown=0.1, long_gross=1, short_gross=0)
    assert lim == ExposureLimits()


def test_a_corrupted_engine_output_makes_the_backtest_stand_down() -> None:
    """From bar 600 the overlay's stability output is NaN: no entry after it, each bar records a
    stand-down with the reason, and positions opened before still exit."""
    prepared = prepare(MARKET, REGIME, seed=1)
    assert prepared.overlay is not None
    clean = run_backtest(
        MARKET,
        build(["regime_entry", "momentum"]),
        config=BacktestConfig(seed=2, regime=REGIME),
        prepared=prepared,
    )
    bad_stability = prepared.overlay.stability.copy()
    bad_stability[600:] = np.nan
    corrupted = replace(prepared, overlay=replace(prepared.overlay, stability=bad_stability))
    sink = ListSink()
    result = run_backtest(
        MARKET,
        build(["regime_entry", "momentum"]),
        config=BacktestConfig(seed=2, regime=REGIME),
        prepared=corrupted,
        sink=sink,
    )
    assert any(t.entry_bar > 601 for t in clean.trades)  # the clean run did trade there
    assert all(t.entry_bar <= 601 for t in result.trades)  # orders of bar 599 fill at 600
    stand_downs = [e for e in sink.events if isinstance(e, Decision) and e.action == "stand_down"]
    assert len(stand_downs) >= MARKET.n_bars - 600 - 5
    # the first engine to read the NaN names it (the pool allocator's context, or the overlay)
    assert all("unusable" in d.reason and "stability" in d.reason for d in stand_downs[-50:])
    assert not any(
        isinstance(e, Decision)
        and e.action == "enter"
        and e.outcome == "ordered"
        and e.timestamp >= MARKET.timestamps[600]
        for e in sink.events
    )
    assert all(t.exit_bar >= 0 for t in result.trades)


def test_a_large_universe_is_read_on_a_sample_of_the_market() -> None:
    big = generate(symbols=60, n_bars=300, seed=4, start="2015-01-01").panel
    from sovereign.trading.overlay import market_sample

    sample = market_sample(big, 50)
    assert sample.n_symbols == 50 and sample.symbols[0] == big.symbols[0]
    assert sample.symbols[-1] == big.symbols[-1]
    assert market_sample(MARKET, 50) is MARKET
    full = compute_overlay(big, seed=1)
    assert full.n_bars == big.n_bars
    np.testing.assert_array_equal(full.stability, compute_overlay(sample, seed=1).stability)


def test_degenerate_panels_give_finite_limits_or_a_documented_fallback() -> None:
    base = generate(symbols=3, n_bars=700, seed=1, start="2015-01-01").panel
    flat = np.full_like(base.close, 10.0)
    constant = replace(base, open=flat, high=flat, low=flat, close=flat)
    ov = compute_overlay(constant)
    assert np.isfinite(ov.stability).all()
    assert not ov.stress_fitted.any()  # a constant market has no stress model: the fallback
    lim = ov.limits(650, drawdown=0.0, max_drawdown=0.1, long_gross=0.0, short_gross=0.0)
    assert math.isinf(lim.long_room) and not lim.stand_down
    one = compute_overlay(base.select([base.symbols[0]]))  # one asset: no contagion, still fine
    assert np.isfinite(one.stability).all() and one.stress_fitted.any()
    gap = base.close.copy()
    gap[:100, 1] = np.nan  # a late listing
    late = replace(
        base,
        close=gap,
        open=np.where(np.isnan(gap), np.nan, base.open),
        high=np.where(np.isnan(gap), np.nan, base.high),
        low=np.where(np.isnan(gap), np.nan, base.low),
        volume=np.where(np.isnan(gap), np.nan, base.volume),
    )
    assert np.isfinite(compute_overlay(late).stability).all()
