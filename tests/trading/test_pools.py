from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.allocation import (
    AllocationConfig,
    FreshnessAction,
    FreshnessConfig,
    context_vector,
)
from sovereign.errors import EngineError
from sovereign.trading.pools import PoolAllocator, PoolConfig, PoolDecision

CTX = context_vector([0.4, 0.3, 0.2, 0.1], stability=0.7, volatility=0.2)
# Freshness on few periods so decay shows up in a short test (the default needs 80 periods).
QUICK_FRESHNESS = FreshnessConfig(min_trades=30, recent_window=15, profit_window=5)


def _drive(
    alloc: PoolAllocator,
    bar_returns: Mapping[str, np.ndarray],
    *,
    start: int = 0,
    equity: dict[str, float] | None = None,
    context: np.ndarray = CTX,
) -> tuple[list[PoolDecision], dict[str, float]]:
    """Feeds one bar at a time; each pool's equity moves by its return times its scale."""
    equity = dict.fromkeys(bar_returns, 100.0) if equity is None else dict(equity)
    n = len(next(iter(bar_returns.values())))
    decisions = []
    for i in range(start, n):
        scales = alloc.current_scales()
        for s, r in bar_returns.items():
            equity[s] *= 1.0 + scales[s] * float(r[i])
        decision = alloc.observe(i, pool_equity=equity, context=context)
        if decision is not None:
            decisions.append(decision)
    return decisions, equity


def _noisy(mean: float, n: int, seed: int, sd: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_none_between_rebalances_and_a_decision_every_period() -> None:
    alloc = PoolAllocator(["a", "b"], PoolConfig(rebalance_every=5))
    flat = {"a": np.zeros(31), "b": np.zeros(31)}
    decisions, _ = _drive(alloc, flat)
    assert [d.bar for d in decisions] == [5, 10, 15, 20, 25, 30]  # bar 0 only anchors
    assert [d.period for d in decisions] == [1, 2, 3, 4, 5, 6]
    assert alloc.periods == 6
    # The schedule counts bars, not calls: after a gap the next rebalance is due at once.
    equity = {"a": 100.0, "b": 100.0}
    assert alloc.observe(34, pool_equity=equity, context=CTX) is None
    assert alloc.observe(34, pool_equity=equity, context=CTX) is None  # same bar: ignored
    assert alloc.observe(50, pool_equity=equity, context=CTX) is not None
    with pytest.raises(EngineError, match="before bar 50"):
        alloc.observe(49, pool_equity=equity, context=CTX)


def test_period_returns_update_the_bandit_with_the_context_of_the_previous_rebalance() -> None:
    alloc = PoolAllocator(["a", "b"], PoolConfig(rebalance_every=2))
    c0, c1, c2 = (context_vector([0.25] * 4, stability=s, volatility=0.1) for s in (0, 0.5, 1))
    alloc.observe(0, pool_equity={"a": 100.0, "b": 50.0}, context=c0)
    alloc.observe(1, pool_equity={"a": 200.0, "b": 1.0}, context=c2)  # mid-period: ignored
    d1 = alloc.observe(2, pool_equity={"a": 110.0, "b": 45.0}, context=c1)
    d2 = alloc.observe(4, pool_equity={"a": 99.0, "b": 45.0}, context=c2)
    assert d1 is not None and d2 is not None
    assert d1.returns == pytest.approx({"a": 0.10, "b": -0.10}, abs=1e-12)
    assert d2.returns == pytest.approx({"a": -0.10, "b": 0.0}, abs=1e-12)
    arms = {arm["strategy"]: arm for arm in alloc.snapshot()["bandit"]["arms"]}
    np.testing.assert_allclose(arms["a"]["b"], 0.10 * c0 - 0.10 * c1, atol=1e-15)
    np.testing.assert_allclose(
        arms["a"]["a"], np.eye(6) + np.outer(c0, c0) + np.outer(c1, c1), atol=1e-15
    )
    assert alloc.snapshot()["history"] == {
        "a": pytest.approx([0.1, -0.1]),
        "b": pytest.approx([-0.1, 0.0]),
    }


def test_scales_are_one_until_min_periods_then_follow_the_weights() -> None:
    alloc = PoolAllocator(["a", "b", "c"], PoolConfig(rebalance_every=5, min_periods=3))
    paths = {"a": _noisy(0.003, 41, 1), "b": _noisy(-0.003, 41, 2), "c": _noisy(0.0, 41, 3)}
    decisions, _ = _drive(alloc, paths)
    assert [d.warming_up for d in decisions[:3]] == [True, True, False]
    for d in decisions[:2]:
        assert d.scales == {"a": 1.0, "b": 1.0, "c": 1.0}
        assert "warming up" in d.reasons["a"]
    for d in decisions[2:]:
        neutral = 1.0 / 3
        assert d.scales == {s: min(1.0, w / neutral) for s, w in d.weights.items()}
        assert math.fsum(d.weights.values()) + d.cash == pytest.approx(1.0, abs=1e-12)
    assert alloc.current_scales() == decisions[-1].scales


def test_a_losing_pool_gets_a_smaller_scale_than_a_gaining_one() -> None:
    alloc = PoolAllocator(["gains", "loses"], PoolConfig(rebalance_every=5, min_periods=3))
    paths = {"gains": _noisy(0.003, 61, 4, 0.005), "loses": _noisy(-0.003, 61, 5, 0.005)}
    decisions, _ = _drive(alloc, paths)
    for d in decisions[2:]:  # from the third rebalance on
        assert d.scales["loses"] < d.scales["gains"]
        assert d.scales["gains"] == 1.0
        assert d.weights["loses"] < d.weights["gains"]
    # The gaining pool is at the bandit's cap (0.8), so the losing one keeps 1 - 0.8 of the
    # capital: scale 0.2 / neutral 0.5.
    assert "at cap" in decisions[-1].reasons["gains"]
    assert decisions[-1].scales["loses"] == pytest.approx(0.4)


def test_a_decaying_strategy_is_killed_once_with_a_reason_and_a_steady_one_is_not() -> None:
    cfg = PoolConfig(rebalance_every=5, freshness=QUICK_FRESHNESS)
    alloc = PoolAllocator(["decays", "steady"], cfg)
    good = 0.003
    decays = np.concatenate([_noisy(good, 200, 6), _noisy(-good, 301, 7)])
    decisions, _ = _drive(alloc, {"decays": decays, "steady": _noisy(good, 501, 8)})
    killed_at = [d for d in decisions if "decays" in d.kills]
    assert len(killed_at) == 1  # reported once
    kill = killed_at[0]
    assert kill.bar > 200  # after the edge went
    assert kill.reasons["decays"].count("kill:") == 1
    assert kill.kills["decays"].startswith("edge decayed, pool retired: kill: score")
    assert kill.freshness["decays"].action is FreshnessAction.KILL
    assert kill.scales["decays"] == 0.0
    later = [d for d in decisions if d.bar > kill.bar]
    assert later
    for d in later:
        assert d.actions["decays"] is FreshnessAction.KILL
        assert d.scales["decays"] == 0.0
        assert "decays" not in d.returns  # no capital: no evidence, no bandit update
        assert d.weights["decays"] == 0.0
    # One live strategy: neutral is 1 and the bandit's cap (0.8) holds the rest in cash.
    assert later[-1].scales["steady"] == pytest.approx(1.0)  # alone: full size
    assert all(d.actions["steady"] is not FreshnessAction.KILL for d in decisions)
    assert alloc.killed == {"decays": kill.kills["decays"]}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_stationary_good_strategies_are_never_killed(seed: int) -> None:
    cfg = PoolConfig(rebalance_every=5, freshness=QUICK_FRESHNESS)
    alloc = PoolAllocator(["x", "y"], cfg)
    paths = {"x": _noisy(0.003, 601, seed), "y": _noisy(0.002, 601, seed + 100)}
    decisions, _ = _drive(alloc, paths)
    assert len(decisions) == 120
    assert all(not d.kills for d in decisions)
    assert alloc.killed == {}
    assert all(d.freshness[s].n > QUICK_FRESHNESS.min_trades for s in "xy" for d in decisions[-5:])


def test_pools_killed_by_the_supervisor_get_scale_zero_without_a_kill() -> None:
    alloc = PoolAllocator(["a", "b", "c"], PoolConfig(rebalance_every=2, min_periods=1))
    eq = {"a": 100.0, "b": 100.0, "c": 100.0}
    alloc.observe(0, pool_equity=eq, context=CTX)
    assert alloc.observe(1, pool_equity={**eq, "b": 80.0}, context=CTX, retired={"b"}) is None
    assert alloc.current_scales() == {"a": 1.0, "b": 0.0, "c": 1.0}  # from that bar on
    # A dead pool's equity is no longer read: a pool that lost everything blocks nothing.
    d1 = alloc.observe(2, pool_equity={**eq, "b": -3.0}, context=CTX, retired={"b"})
    d2 = alloc.observe(4, pool_equity={**eq, "b": math.nan}, context=CTX)
    assert d1 is not None and d2 is not None
    for d in (d1, d2):
        assert "b" not in d.returns  # no bandit update, no history
        assert d.kills == {}
        assert d.scales["b"] == 0.0
        assert d.actions["b"] is FreshnessAction.KILL
        assert d.scales["a"] == pytest.approx(min(1.0, d.weights["a"] / 0.5))
    assert "killed by the Supervisor" in alloc.killed["b"]
    with pytest.raises(EngineError, match="unknown retired"):
        alloc.observe(6, pool_equity=eq, context=CTX, retired={"zz"})


def test_snapshot_and_restore_give_identical_later_decisions() -> None:
    cfg = PoolConfig(
        rebalance_every=5,
        freshness=QUICK_FRESHNESS,
        allocation=AllocationConfig(reinvert_every=4),  # Sherman–Morrison between re-inversions
    )
    decays = np.concatenate([_noisy(0.003, 200, 21), _noisy(-0.003, 201, 22)])
    paths = {"decays": decays, "steady": _noisy(0.003, 401, 23), "flat": _noisy(0.0, 401, 24)}
    cut = {s: r[:233] for s, r in paths.items()}  # mid-period: the anchor must survive too
    original = PoolAllocator(paths, cfg)
    _, equity = _drive(original, cut)
    saved = json.loads(json.dumps(original.snapshot()))
    restored = PoolAllocator(["flat", "steady", "decays"], cfg)
    restored.restore(saved)
    assert restored.snapshot() == saved
    assert restored.current_scales() == original.current_scales()
    after_original, _ = _drive(original, paths, start=233, equity=equity)
    after_restored, _ = _drive(restored, paths, start=233, equity=equity)
    assert after_original == after_restored  # bit-identical, field by field
    assert any(d.kills for d in after_restored)  # the comparison covers a kill
    assert restored.snapshot() == original.snapshot()


def test_restore_rejects_other_strategies_and_malformed_snapshots() -> None:
    alloc = PoolAllocator(["a", "b"], PoolConfig(rebalance_every=2))
    _drive(alloc, {"a": _noisy(0.0, 9, 1), "b": _noisy(0.0, 9, 2)})
    good = alloc.snapshot()
    before = json.dumps(good)
    other = PoolAllocator(["a", "c"])
    with pytest.raises(EngineError, match="snapshot is for"):
        other.restore(good)
    broken = [
        {**good, "version": 2},
        {k: v for k, v in good.items() if k != "history"},
        {**good, "scales": {"a": 1.5, "b": 1.0}},
        {**good, "anchor": {**good["anchor"], "context": [0.1] * 5}},
        {**good, "killed": {"zz": "?"}},
    ]
    for data in broken:
        with pytest.raises(EngineError):
            alloc.restore(data)
    assert json.dumps(alloc.snapshot()) == before  # a failed restore changed nothing


@pytest.mark.parametrize(
    ("equity", "context", "match"),
    [
        ({"a": math.nan, "b": 100.0}, CTX, "pools.equity.a"),
        ({"a": 100.0, "b": math.inf}, CTX, "pools.equity.b"),
        ({"a": 0.0, "b": 100.0}, CTX, "not positive"),
        ({"a": -5.0, "b": 100.0}, CTX, "not positive"),
        ({"a": 100.0}, CTX, "expected"),
        ({"a": 100.0, "b": 100.0, "c": 1.0}, CTX, "expected"),
        ({"a": 100.0, "b": 100.0}, CTX[:5], "shape"),
        ({"a": 100.0, "b": 100.0}, np.full(6, math.nan), "not finite"),
    ],
)
def test_degenerate_input_is_an_engine_error_and_changes_nothing(
    equity: dict[str, float], context: np.ndarray, match: str
) -> None:
    def fresh() -> PoolAllocator:
        alloc = PoolAllocator(["a", "b"], PoolConfig(rebalance_every=3, min_periods=1))
        alloc.observe(0, pool_equity={"a": 100.0, "b": 100.0}, context=CTX)
        return alloc

    alloc, twin = fresh(), fresh()
    with pytest.raises(EngineError, match=match):
        alloc.observe(3, pool_equity=equity, context=context)  # a rebalance bar
    good = {"a": 103.0, "b": 98.0}
    assert alloc.observe(3, pool_equity=good, context=CTX) == twin.observe(
        3, pool_equity=good, context=CTX
    )
    assert alloc.snapshot() == twin.snapshot()


def test_invalid_configuration_and_disabled_allocator() -> None:
    with pytest.raises(EngineError):
        PoolConfig(rebalance_every=0)
    with pytest.raises(EngineError):
        PoolConfig(min_periods=0)
    with pytest.raises(EngineError):
        PoolAllocator([])
    off = PoolAllocator(["a", "b"], PoolConfig(enabled=False, rebalance_every=1))
    decisions, _ = _drive(off, {"a": _noisy(0.01, 20, 1), "b": _noisy(-0.01, 20, 2)})
    assert decisions == []
    assert off.current_scales() == {"a": 1.0, "b": 1.0}
    assert off.observe(99, pool_equity={"a": math.nan}, context=CTX) is None  # off: not read


@settings(max_examples=40, deadline=None)
@given(
    n_strategies=st.integers(1, 4),
    rebalance_every=st.integers(1, 4),
    min_periods=st.integers(1, 3),
    returns=st.lists(
        st.lists(st.floats(-0.2, 0.2), min_size=4, max_size=4), min_size=2, max_size=25
    ),
    probabilities=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
    stability=st.floats(0.0, 1.0),
    volatility=st.floats(0.0, 3.0),
)
def test_scales_are_always_within_zero_and_one(
    n_strategies: int,
    rebalance_every: int,
    min_periods: int,
    returns: list[list[float]],
    probabilities: list[float],
    stability: float,
    volatility: float,
) -> None:
    names = [f"s{k}" for k in range(n_strategies)]
    cfg = PoolConfig(
        rebalance_every=rebalance_every,
        min_periods=min_periods,
        freshness=FreshnessConfig(min_trades=12, recent_window=2, profit_window=1),
    )
    alloc = PoolAllocator(names, cfg)
    context = context_vector(probabilities, stability, volatility)
    paths = {s: np.array([row[k] for row in returns]) for k, s in enumerate(names)}
    decisions, _ = _drive(alloc, paths, context=context)
    for scales in [*(d.scales for d in decisions), alloc.current_scales()]:
        assert set(scales) == set(names)
        assert all(0.0 <= v <= 1.0 for v in scales.values())
    for d in decisions:
        live = [s for s in names if d.actions[s] is not FreshnessAction.KILL]
        assert all(d.scales[s] == 0.0 for s in names if s not in live)
        if not d.warming_up and live:
            neutral = min(1.0 / len(live), alloc.config.allocation.cap)
            assert max(d.scales[s] for s in live) == pytest.approx(
                min(1.0, max(d.weights[s] for s in live) / neutral)
            )


def test_due_says_when_observe_has_work() -> None:
    alloc = PoolAllocator(["a", "b"], PoolConfig(rebalance_every=5))
    ctx = context_vector([0.25] * 4, 1.0, 0.2)
    assert alloc.due(0)  # the first call anchors
    alloc.observe(0, pool_equity={"a": 1.0, "b": 1.0}, context=ctx)
    assert [alloc.due(i) for i in range(1, 7)] == [False, False, False, False, True, True]
    assert not PoolAllocator(["a"], PoolConfig(enabled=False)).due(0)
