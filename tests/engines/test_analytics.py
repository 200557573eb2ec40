"""Trade table, performance by slice and the weakness finder, on hand-made and seeded trades."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sovereign.app.persist import trade_row
from sovereign.engines.analytics import WeaknessReport, benjamini_hochberg, find_weaknesses
from sovereign.engines.indicators import FeatureFrame
from sovereign.engines.trade_table import (
    NA,
    Dimension,
    performance_by,
    trade_frame,
    trade_frame_from_rows,
)
from sovereign.memory import make_engine, upgrade
from sovereign.memory.trade_memory import TradeMemory
from sovereign.trading.events import ClosedTrade

TS = pd.date_range("2024-01-01", periods=400, freq="D", tz="UTC")  # 2024-01-01 is a Monday
TIMES = list(TS.to_pydatetime())
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
REGIMES = ("trending_up", "ranging", "volatile", "trending_down")


def trade(
    *,
    entry_bar: int,
    exit_bar: int,
    pnl: float,
    strategy: str = "alpha",
    symbol: str = "AAA",
    regime: str = "ranging",
    side: int = 1,
) -> ClosedTrade:
    return ClosedTrade(
        strategy=strategy,
        symbol=symbol,
        side=side,
        quantity=10.0,
        entry_time=TIMES[entry_bar],
        exit_time=TIMES[exit_bar],
        entry_price=100.0,
        exit_price=100.0 + side * pnl / 10.0,
        pnl=pnl,
        commission=0.0,
        entry_reason="test",
        exit_reason="test",
        regime_at_entry=regime,
        confidence=0.6,
        rules=(),
        ruleset_version="rs-test",
        entry_bar=entry_bar,
        exit_bar=exit_bar,
    )


def features(volume: np.ndarray | None, atr_pct: np.ndarray) -> FeatureFrame:
    shape = atr_pct.shape
    nan = np.full(shape, np.nan)
    return FeatureFrame(
        atr=atr_pct.copy(),
        atr_pct=atr_pct,
        atr_is_proxy=False,
        volume_percentile=nan.copy() if volume is None else volume,
        support=nan.copy(),
        resistance=nan.copy(),
        sr_score=nan.copy(),
        dist_support_atr=nan.copy(),
        dist_resistance_atr=nan.copy(),
        returns=nan.copy(),
        volatility=nan.copy(),
    )


def seeded_trades(
    seed: int,
    n: int = 600,
    *,
    planted: float = 0.0,
    strategies: Sequence[str] = ("alpha", "beta"),
) -> list[ClosedTrade]:
    """Independent trades (returns ~ N(0.1%, 2%)); ``planted`` is subtracted in "volatile"."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        entry = int(rng.integers(1, 380))
        regime = REGIMES[int(rng.integers(len(REGIMES)))]
        ret = rng.normal(0.1, 2.0) - (planted if regime == "volatile" else 0.0)
        out.append(
            trade(
                entry_bar=entry,
                exit_bar=entry + int(rng.integers(1, 15)),
                pnl=10.0 * ret,  # quantity 10 at 100: return_pct == ret
                strategy=strategies[int(rng.integers(len(strategies)))],
                symbol=SYMBOLS[int(rng.integers(len(SYMBOLS)))],
                regime=regime,
            )
        )
    return out


# ------------------------------------------------------------------------------- trade table


def test_trade_frame_reads_features_at_the_signal_bar() -> None:
    n = len(TS)
    atr = np.tile(np.arange(n, dtype=float)[:, None] / 100.0 + 0.5, (1, len(SYMBOLS)))
    atr[:, 1] += 10.0  # BBB far more volatile
    volume = np.full((n, len(SYMBOLS)), 50.0)
    volume[9, 0] = 5.0  # AAA's signal bar for the trade entered (filled) at bar 10
    volume[20, 0] = np.nan
    trades = [
        trade(entry_bar=10, exit_bar=12, pnl=-5.0, symbol="AAA"),
        trade(entry_bar=21, exit_bar=25, pnl=8.0, symbol="AAA", side=-1),
        trade(entry_bar=30, exit_bar=31, pnl=1.0, symbol="BBB", regime="volatile"),
    ]
    frame = trade_frame(trades, features(volume, atr), SYMBOLS, TS)
    assert list(frame["signal_bar"]) == [9, 20, 29]
    assert list(frame["signal_time"]) == [TS[9], TS[20], TS[29]]
    assert list(frame["weekday"]) == ["Wed", "Sun", "Tue"]  # 2024-01-10, 01-21, 01-30
    assert list(frame["volume_bucket"]) == ["q1", NA, "q3"]
    assert frame["atr_pct"].tolist() == pytest.approx([0.59, 0.70, 10.79])
    assert list(frame["side"]) == ["long", "short", "long"]
    assert frame["return_pct"].tolist() == pytest.approx([-0.5, 0.8, 0.1])
    assert list(frame["win"]) == [False, True, True]
    assert list(frame["strategy_regime"]) == ["alpha|ranging", "alpha|ranging", "alpha|volatile"]


def test_trade_frame_without_features_has_no_buckets() -> None:
    frame = trade_frame([trade(entry_bar=3, exit_bar=4, pnl=1.0)], None, SYMBOLS, TS)
    assert frame.loc[0, "volume_bucket"] == NA and frame.loc[0, "atr_bucket"] == NA
    assert math.isnan(frame.loc[0, "atr_pct"])
    with pytest.raises(ValueError, match="timezone-aware"):
        trade_frame([], None, SYMBOLS, TS.tz_localize(None))


def test_trade_frame_slices_by_the_stability_bucket_of_the_signal_bar() -> None:
    n = len(TS)
    buckets = np.array(["stable"] * n, dtype=object)
    buckets[9] = "unstable"
    buckets[29] = "fragile"
    trades = [
        trade(entry_bar=10, exit_bar=12, pnl=-5.0),
        trade(entry_bar=21, exit_bar=25, pnl=8.0),
        trade(entry_bar=30, exit_bar=31, pnl=1.0),
    ]
    frame = trade_frame(trades, None, SYMBOLS, TS, stability=buckets)
    assert list(frame[Dimension.STABILITY.column]) == ["unstable", "stable", "fragile"]
    assert list(trade_frame(trades, None, SYMBOLS, TS)["stability_bucket"]) == [NA] * 3
    with pytest.raises(ValueError, match="stability has"):
        trade_frame(trades, None, SYMBOLS, TS, stability=buckets[:-1])


def test_atr_buckets_are_quintiles_of_the_trades_atr() -> None:
    n = len(TS)
    atr = np.tile(np.arange(1, n + 1, dtype=float)[:, None], (1, len(SYMBOLS)))  # bar b -> b+1
    trades = [trade(entry_bar=b + 1, exit_bar=b + 2, pnl=1.0) for b in range(10)]  # atr 1..10
    frame = trade_frame(trades, features(None, atr), SYMBOLS, TS)
    edges = np.quantile(np.arange(1.0, 11.0), [0.2, 0.4, 0.6, 0.8])  # 2.8, 4.6, 6.4, 8.2
    assert (
        list(frame["atr_bucket"]) == ["q1"] * 2 + ["q2"] * 2 + ["q3"] * 2 + ["q4"] * 2 + ["q5"] * 2
    )
    assert frame["atr_low"].iloc[-1] == pytest.approx(edges[3])
    assert math.isnan(frame["atr_high"].iloc[-1]) and math.isnan(frame["atr_low"].iloc[0])
    assert frame["atr_high"].iloc[0] == pytest.approx(edges[0])
    assert (frame["atr_pct"] > frame["atr_low"].fillna(-1)).all()  # atr_above(low) selects it
    assert volume_free(frame)


def volume_free(frame: pd.DataFrame) -> bool:
    return bool((frame["volume_bucket"] == NA).all())


def test_losing_streak_counts_losses_closed_by_the_signal_bar() -> None:
    trades = [
        trade(entry_bar=1, exit_bar=3, pnl=-1.0),
        trade(entry_bar=2, exit_bar=5, pnl=-1.0),  # signal bar 1: nothing closed yet
        trade(entry_bar=6, exit_bar=8, pnl=-1.0),  # signal bar 5: two losses closed (3, 5)
        trade(entry_bar=9, exit_bar=10, pnl=2.0),  # signal bar 8: three
        trade(entry_bar=11, exit_bar=12, pnl=-1.0),  # signal bar 10: the win reset it
        trade(entry_bar=6, exit_bar=7, pnl=-1.0, strategy="beta"),  # its own counter
        trade(entry_bar=8, exit_bar=9, pnl=0.0, strategy="beta"),  # signal 7: one
        trade(entry_bar=10, exit_bar=11, pnl=1.0, strategy="beta"),  # signal 9: flat resets
    ]
    frame = trade_frame(trades, None, SYMBOLS, TS)
    assert list(frame["losing_streak"]) == [0, 0, 2, 3, 0, 0, 1, 0]
    assert list(frame["streak_bucket"]) == ["0", "0", "2", "3+", "0", "0", "1", "0"]


def test_frame_from_memory_rows_matches_the_frame_from_trades(tmp_path: Path) -> None:
    trades = seeded_trades(3, n=40)
    engine = make_engine(f"sqlite:///{tmp_path / 'memory.db'}")
    upgrade(engine)
    memory = TradeMemory(engine)
    memory.record_run_start("run-1", started_at=datetime(2024, 1, 1, tzinfo=UTC), mode="backtest")
    memory.add_trades(trade_row("run-1", t) for t in trades)
    rows = memory.trades(run_id="run-1")  # exit order, not entry order
    engine.dispose()
    atr = np.random.default_rng(0).uniform(0.5, 3.0, (len(TS), len(SYMBOLS)))
    volume = np.random.default_rng(1).uniform(0.0, 100.0, (len(TS), len(SYMBOLS)))
    feats = features(volume, atr)
    by_exit = sorted(trades, key=lambda t: t.exit_time)
    expected = trade_frame(by_exit, feats, SYMBOLS, TS)
    got = trade_frame_from_rows(rows, feats, SYMBOLS, TS)
    key = ["strategy", "symbol", "entry_time", "exit_time", "pnl"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
        check_exact=False,
    )


def test_rows_off_the_timestamp_grid_have_no_signal_bar() -> None:
    t = trade(entry_bar=5, exit_bar=6, pnl=1.0)
    frame = trade_frame_from_rows([t], None, SYMBOLS, TS[10:])  # type: ignore[list-item]
    assert frame.loc[0, "signal_bar"] == -1 and frame.loc[0, "weekday"] == weekday_of(TS[5])


def weekday_of(ts: pd.Timestamp) -> str:
    return ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[ts.weekday()]


def test_performance_by_matches_a_hand_groupby() -> None:
    trades = [  # signal bars 6 (Sun), 0 (Mon), 1 (Tue)
        trade(entry_bar=7, exit_bar=8, pnl=10.0, regime="volatile"),
        trade(entry_bar=1, exit_bar=2, pnl=-30.0, regime="volatile"),
        trade(entry_bar=2, exit_bar=3, pnl=5.0, regime="ranging"),
    ]
    frame = trade_frame(trades, None, SYMBOLS, TS)
    table = performance_by(frame, Dimension.REGIME)
    assert list(table.index) == ["ranging", "volatile"]
    assert table.loc["volatile"].to_dict() == pytest.approx(
        {"n": 2, "pnl": -20.0, "mean_pnl": -10.0, "mean_return": -1.0, "win_rate": 0.5}
    )
    assert list(performance_by(frame, "weekday").index) == ["Mon", "Tue", "Sun"]
    with pytest.raises(ValueError, match="no column"):
        performance_by(frame, "colour")


# ---------------------------------------------------------------------------- statistics


def test_benjamini_hochberg_matches_a_hand_computation_and_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted 0.005, 0.01, 0.03, 0.04, 0.5 -> x5/rank: 0.025, 0.025, 0.05, 0.05, 0.5 (monotone)
    assert benjamini_hochberg(p).tolist() == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    # step-up: a larger p can pull smaller ones down to its level
    assert benjamini_hochberg([0.02, 0.021, 0.022]).tolist() == pytest.approx([0.022] * 3)
    rng = np.random.default_rng(7)
    many = rng.uniform(0, 0.2, 40)
    assert benjamini_hochberg(many) == pytest.approx(stats.false_discovery_control(many))
    assert benjamini_hochberg([]).size == 0


def small_frame(returns: Sequence[float], in_cluster: Sequence[bool]) -> pd.DataFrame:
    trades = [
        trade(entry_bar=k + 1, exit_bar=k + 2, pnl=10.0 * r, regime="volatile" if c else "ranging")
        for k, (r, c) in enumerate(zip(returns, in_cluster, strict=True))
    ]
    return trade_frame(trades, None, SYMBOLS, TS)


def test_permutation_p_value_matches_exact_enumeration() -> None:
    returns = [-2.0, -1.0, 0.5, -0.5, 1.0, 2.0, 1.5, 0.0, 3.0, -3.0]
    cluster = [True, True, False, True, False, False, False, False, False, False]
    obs = sum(r for r, c in zip(returns, cluster, strict=True) if c)
    subsets = list(itertools.combinations(returns, 3))
    exact = sum(sum(s) <= obs + 1e-12 for s in subsets) / len(subsets)  # 9/120
    frame = small_frame(returns, cluster)
    report = find_weaknesses(
        frame,
        min_trades=3,
        alpha=0.99,
        seed=1,
        n_permutations=20_000,
        dimensions=(Dimension.REGIME,),
    )
    (w,) = report.weaknesses
    assert (w.value, w.n) == ("volatile", 3)
    assert w.p_value == pytest.approx(exact, abs=0.006)
    assert w.mean_return == pytest.approx(obs / 3) and w.rest_mean_return == pytest.approx(
        (sum(returns) - obs) / 7
    )


def test_welch_method_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    returns = np.concatenate([rng.normal(-1, 1, 30), rng.normal(0, 2, 50)])
    frame = small_frame(returns, [True] * 30 + [False] * 50)
    report = find_weaknesses(
        frame, alpha=0.99, method="welch", dimensions=(Dimension.REGIME,), min_trades=10
    )
    (w,) = report.weaknesses
    ref = stats.ttest_ind(returns[:30], returns[30:], equal_var=False, alternative="less")
    assert w.p_value == pytest.approx(ref.pvalue)
    pooled = math.sqrt((29 * returns[:30].var(ddof=1) + 49 * returns[30:].var(ddof=1)) / 78)
    assert w.effect_size == pytest.approx((returns[:30].mean() - returns[30:].mean()) / pooled)


# ------------------------------------------------------------------------- weakness finder


def test_a_planted_losing_regime_is_found_and_significant() -> None:
    frame = trade_frame(seeded_trades(11, planted=1.5), None, SYMBOLS, TS)
    report = find_weaknesses(frame, seed=3, n_permutations=999)
    top = report.weaknesses[0]
    assert (top.dimension, top.value) == (Dimension.REGIME, "volatile")
    assert top.q_value <= 0.05 and top.p_value == pytest.approx(1 / 1000)
    assert top.mean_return < 0 < top.rest_mean_return and top.effect_size < -0.5
    volatile = frame["regime"] == "volatile"
    assert top.n == volatile.sum()
    assert top.total_pnl == pytest.approx(frame.loc[volatile, "pnl"].sum())
    assert top.win_rate == pytest.approx((frame.loc[volatile, "pnl"] > 0).mean())
    found = {(w.dimension, w.value, w.strategy) for w in report.weaknesses}
    assert (Dimension.STRATEGY_REGIME, "volatile", "alpha") in found
    assert all(w.q_value <= 0.05 for w in report.weaknesses)
    assert "regime volatile" in report.summary()


def test_pure_noise_finds_nothing_at_five_percent() -> None:
    frame = trade_frame(seeded_trades(2024), None, SYMBOLS, TS)
    report = find_weaknesses(frame, seed=9)  # 1999 permutations: p can reach 0.0005
    assert report.n_tests >= 20  # regimes, weekdays, symbols, strategy x regime, streaks
    assert report.weaknesses == ()
    assert not any(s.significant for s in report.streaks)
    assert "0 significant" in report.summary()


def test_false_discoveries_stay_rare_across_noise_seeds_and_planted_ones_are_found() -> None:
    # Under the complete null, BH at 5% bounds the chance of any report at about 5% (Welch's
    # test here: continuous p-values, so a discovery is always possible).
    noise = planted = 0
    for seed in range(20):
        trades = seeded_trades(100 + seed, n=300)
        frame = trade_frame(trades, None, SYMBOLS, TS)
        noise += bool(
            find_weaknesses(frame, seed=seed, method="welch", n_permutations=99).weaknesses
        )
        bad = trade_frame(seeded_trades(100 + seed, n=300, planted=1.2), None, SYMBOLS, TS)
        found = find_weaknesses(bad, seed=seed, method="welch", n_permutations=99).weaknesses
        planted += any(w.dimension is Dimension.REGIME and w.value == "volatile" for w in found)
    assert noise <= 2
    assert planted >= 16


def test_small_clusters_are_not_tested() -> None:
    returns = [-5.0] * 5 + [1.0] * 60
    frame = small_frame(returns, [True] * 5 + [False] * 60)
    report = find_weaknesses(frame, min_trades=10, dimensions=(Dimension.REGIME,))
    assert report.n_tests == 1  # only the streak test of "alpha"; 5 trades < min_trades
    assert report.weaknesses == ()


def test_same_seed_same_report_and_json_round_trip() -> None:
    frame = trade_frame(seeded_trades(11, planted=1.0), None, SYMBOLS, TS)
    a = find_weaknesses(frame, seed=4, n_permutations=299)
    b = find_weaknesses(frame, seed=4, n_permutations=299)
    assert a == b
    text = json.dumps(a.to_json())
    assert WeaknessReport.from_json(json.loads(text)) == a
    c = find_weaknesses(frame, seed=5, n_permutations=299)
    assert [s.p_value for s in c.streaks] != [s.p_value for s in a.streaks]


def test_losing_streaks_are_tested_against_chance() -> None:
    # alpha loses in blocks of six (streaky); beta alternates (anti-streaky); same loss rate.
    streaky = ([-1.0] * 6 + [1.0] * 6) * 5
    alternating = [-1.0, 1.0] * 30
    trades = [
        trade(entry_bar=k + 1, exit_bar=k + 2, pnl=p, strategy="alpha")
        for k, p in enumerate(streaky)
    ] + [
        trade(entry_bar=k + 1, exit_bar=k + 2, pnl=p, strategy="beta")
        for k, p in enumerate(alternating)
    ]
    frame = trade_frame(trades, None, SYMBOLS, TS)
    report = find_weaknesses(frame, seed=0, n_permutations=999, dimensions=())
    alpha, beta = report.streaks
    assert (alpha.strategy, alpha.runs, alpha.longest, alpha.count, alpha.k) == (
        "alpha",
        5,
        6,
        5,
        3,
    )
    # E[losing runs] with 30 losses among 60 = 30 * 31 / 60 = 15.5
    assert alpha.expected_runs == pytest.approx(15.5, abs=0.3)
    assert alpha.loss_rate == 0.5 and alpha.significant and alpha.p_value == 1 / 1000
    assert alpha.expected_longest < 6 and alpha.expected_count < 5
    assert (beta.runs, beta.longest, beta.count) == (30, 1, 0) and not beta.significant
    assert beta.p_value == 1.0
    assert "longer than chance" in report.summary()


def test_no_trades_give_an_empty_frame_and_an_empty_report() -> None:
    frame = trade_frame([], None, SYMBOLS, TS)
    assert frame.empty and "atr_bucket" in frame.columns
    report = find_weaknesses(frame)
    assert (report.n_trades, report.n_tests, report.weaknesses, report.streaks) == (0, 0, (), ())
    assert report.summary().startswith("0 trades")
