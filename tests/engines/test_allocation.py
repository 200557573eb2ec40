from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.allocation import (
    CONTEXT_FEATURES,
    AllocationConfig,
    BanditState,
    FreshnessAction,
    FreshnessConfig,
    LinUCBAllocator,
    context_vector,
    empirical_cvar,
    freshness,
)
from sovereign.errors import EngineError

# ------------------------------------------------------------------------------------ LinUCB


def _fed(n_updates: int, reinvert_every: int = 256, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_updates, 3))
    r = rng.normal(0.001, 0.01, n_updates)
    cfg = AllocationConfig(ridge=0.5, reinvert_every=reinvert_every)
    alloc = LinUCBAllocator.create(["only"], n_features=3, config=cfg)
    for xi, ri in zip(x, r, strict=True):
        alloc = alloc.update("only", xi, float(ri))
    return alloc, x, r


@pytest.mark.parametrize("reinvert_every", [256, 7])
def test_a_b_theta_and_sherman_morrison_match_direct_numpy(reinvert_every: int) -> None:
    alloc, x, r = _fed(50, reinvert_every)
    arm = alloc.state.arm("only")
    a = 0.5 * np.eye(3) + x.T @ x
    b = x.T @ r
    np.testing.assert_allclose(arm.a, a, rtol=1e-12)
    np.testing.assert_allclose(arm.b, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(arm.a_inv, np.linalg.inv(a), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(arm.theta, np.linalg.solve(a, b), rtol=1e-9, atol=1e-12)
    assert arm.n_updates == 50


def test_score_is_ucb_minus_cvar_penalty() -> None:
    alloc, _, r = _fed(60)
    cfg = alloc.config
    x = np.array([0.3, -0.2, 1.0])
    a = alloc.state.arm("only").a
    theta = np.linalg.solve(a, alloc.state.arm("only").b)
    tail = np.sort(r)[: math.ceil(0.05 * 60)]  # worst 3 of 60
    expected = theta @ x + cfg.alpha * math.sqrt(x @ np.linalg.solve(a, x)) - max(-tail.mean(), 0.0)
    out = alloc.allocate(x)
    assert out.scores["only"] == pytest.approx(expected, rel=1e-9)
    assert "CVaR" in out.reasons["only"]


def test_empirical_cvar_golden() -> None:
    r = np.arange(1, 101) / 100.0 - 0.5  # -0.49 .. 0.50
    assert empirical_cvar(r, 0.95) == pytest.approx(-np.mean([-0.49, -0.48, -0.47, -0.46, -0.45]))
    assert empirical_cvar([0.01] * 10, 0.95) == pytest.approx(-0.01)  # a tail of gains
    assert empirical_cvar([-0.2, 0.1, 0.3], 0.95) == pytest.approx(0.2)  # ceil(0.15) = 1
    with pytest.raises(EngineError):
        empirical_cvar([], 0.95)
    with pytest.raises(EngineError):
        empirical_cvar([0.1, math.nan], 0.95)


def test_state_round_trips_through_json() -> None:
    alloc, _, _ = _fed(30)
    alloc = alloc.with_strategies(["other"])
    loaded = BanditState.from_dict(json.loads(json.dumps(alloc.state.to_dict())))
    assert loaded == alloc.state
    assert loaded != _fed(30, seed=1)[0].with_strategies(["other"]).state
    again = LinUCBAllocator(config=alloc.config, state=loaded)
    x = [0.1, 0.2, 0.3]
    assert again.allocate(x) == alloc.allocate(x)
    assert [a.strategy for a in loaded.arms] == ["only", "other"]


def test_malformed_state_is_an_engine_error() -> None:
    good = _fed(3)[0].state.to_dict()
    with pytest.raises(EngineError, match="malformed"):
        BanditState.from_dict({"arms": []})
    bad = json.loads(json.dumps(good))
    bad["arms"][0]["a"] = [[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(EngineError, match="positive definite"):
        BanditState.from_dict(bad)
    bad["arms"][0]["a"] = [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(EngineError, match="shape"):
        BanditState.from_dict(bad)


def test_bad_inputs_are_engine_errors() -> None:
    alloc = LinUCBAllocator.create(["a", "b"], n_features=2)
    with pytest.raises(EngineError, match="shape"):
        alloc.allocate([1.0, 0.0, 0.0])
    with pytest.raises(EngineError, match="not finite"):
        alloc.update("a", [1.0, math.nan], 0.01)
    with pytest.raises(EngineError, match="not finite"):
        alloc.update("a", [1.0, 0.0], math.inf)
    with pytest.raises(EngineError, match="unknown strategy"):
        alloc.update("zzz", [1.0, 0.0], 0.01)
    with pytest.raises(EngineError, match="at least one strategy"):
        LinUCBAllocator.create([])
    with pytest.raises(EngineError, match="invalid configuration"):
        AllocationConfig(floor=0.5, cap=0.4)


def test_order_of_strategies_does_not_matter_and_ties_split_evenly() -> None:
    one = LinUCBAllocator.create(["b", "a", "c"], n_features=2)
    two = LinUCBAllocator.create(["c", "b", "a"], n_features=2)
    assert one == two
    out = one.allocate([1.0, 0.0])
    assert list(out.weights) == ["a", "b", "c"]
    assert all(w == pytest.approx(1 / 3) for w in out.weights.values())
    assert out.cash == 0.0


def test_context_vector_layout() -> None:
    x = context_vector([0.1, 0.2, 0.3, 0.4], 0.8, 3.0)
    assert x.shape == (len(CONTEXT_FEATURES),) == (6,)
    np.testing.assert_allclose(x, [0.1, 0.2, 0.3, 0.4, 0.8, 2.0])  # volatility clipped at 2
    assert CONTEXT_FEATURES[:2] == ("p_trending_up", "p_trending_down")
    with pytest.raises(EngineError):
        context_vector([0.5, 0.5, 0.0], 0.5, 0.2)
    with pytest.raises(EngineError):
        context_vector([0.25] * 4, 1.5, 0.2)


def test_learns_which_arm_pays_in_which_context() -> None:
    """Arm a pays +1% in context x1 and -1% in x2; arm b the reverse. Bandit feedback only:
    each period one arm, drawn by the current weights, reveals its reward."""
    cfg = AllocationConfig(alpha=0.01, temperature=0.005, floor=0.05, cap=0.9)
    alloc = LinUCBAllocator.create(["a", "b"], n_features=2, config=cfg)
    rng = np.random.default_rng(7)
    contexts = (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    pays = {"a": (0.01, -0.01), "b": (-0.01, 0.01)}
    earned = 0.0
    for _ in range(300):
        c = int(rng.integers(2))
        w = alloc.allocate(contexts[c]).weights
        arm = str(rng.choice(["a", "b"], p=[w["a"], w["b"]]))
        reward = pays[arm][c] + rng.normal(0.0, 0.01)
        earned += reward
        alloc = alloc.update(arm, contexts[c], reward)
    in_x1 = alloc.allocate(contexts[0]).weights
    in_x2 = alloc.allocate(contexts[1]).weights
    assert in_x1["a"] == pytest.approx(0.9) and in_x1["b"] == pytest.approx(0.1)
    assert in_x2["b"] == pytest.approx(0.9) and in_x2["a"] == pytest.approx(0.1)
    assert earned / 300 > 0.005  # most periods were spent on the paying arm


def _fat_vs_steady(cvar_penalty: float) -> dict[str, float]:
    cfg = AllocationConfig(alpha=0.0, temperature=0.005, cvar_penalty=cvar_penalty)
    alloc = LinUCBAllocator.create(["fat", "steady"], n_features=1, config=cfg)
    rng = np.random.default_rng(3)
    for t in range(200):
        fat = (0.02 if t % 10 else -0.10) + rng.normal(0.0, 0.002)  # mean 0.8%, -10% crashes
        alloc = alloc.update("fat", [1.0], fat)
        alloc = alloc.update("steady", [1.0], 0.006 + rng.normal(0.0, 0.002))
    return dict(alloc.allocate([1.0]).weights)


def test_cvar_penalty_moves_capital_away_from_a_fat_left_tail() -> None:
    off, on = _fat_vs_steady(0.0), _fat_vs_steady(1.0)
    assert off["fat"] > off["steady"]  # higher mean wins without the penalty
    assert on["fat"] < 0.5 * off["fat"]
    assert on["steady"] > on["fat"]


def test_freshness_actions_halve_the_cap_and_kill() -> None:
    cfg = AllocationConfig(cap=0.6, floor=0.1)
    alloc = LinUCBAllocator.create(["a", "b", "c"], n_features=1, config=cfg)
    for _ in range(30):
        alloc = alloc.update("a", [1.0], 0.02)  # a is clearly best
    base = alloc.allocate([1.0])
    assert base.weights["a"] == pytest.approx(0.6)
    demoted = alloc.allocate([1.0], {"a": FreshnessAction.DEMOTE})
    assert demoted.weights["a"] == pytest.approx(0.3)
    assert "cap halved" in demoted.reasons["a"]
    killed = alloc.allocate([1.0], {"a": FreshnessAction.KILL, "b": FreshnessAction.ACTIVE})
    assert killed.weights["a"] == 0.0
    assert "killed" in killed.reasons["a"]
    assert killed.weights["b"] == pytest.approx(0.5) and killed.cash == pytest.approx(0.0)
    alone = alloc.allocate([1.0], {"a": FreshnessAction.KILL, "b": FreshnessAction.KILL})
    assert alone.weights["c"] == pytest.approx(0.6) and alone.cash == pytest.approx(0.4)
    none = alloc.allocate([1.0], dict.fromkeys("abc", FreshnessAction.KILL))
    assert sum(none.weights.values()) == 0.0 and none.cash == 1.0


@settings(max_examples=60, deadline=None)
@given(
    n_arms=st.integers(1, 7),
    floor=st.one_of(st.just(0.0), st.floats(0.0, 0.3)),
    cap=st.floats(0.05, 1.0),
    temperature=st.floats(1e-6, 0.1),  # down to scores 1e5 temperatures apart
    seed=st.integers(0, 10_000),
    actions=st.lists(st.sampled_from(list(FreshnessAction)), min_size=7, max_size=7),
)
def test_weights_are_a_capped_floored_softmax_summing_to_one(
    n_arms: int,
    floor: float,
    cap: float,
    temperature: float,
    seed: int,
    actions: list[FreshnessAction],
) -> None:
    floor = min(floor, cap)
    cfg = AllocationConfig(floor=floor, cap=cap, temperature=temperature, cvar_min_samples=5)
    names = [f"s{i}" for i in range(n_arms)]
    alloc = LinUCBAllocator.create(names, n_features=2, config=cfg)
    rng = np.random.default_rng(seed)
    for _ in range(12):
        name = names[int(rng.integers(n_arms))]
        alloc = alloc.update(name, rng.uniform(0, 1, 2), float(rng.normal(0, 0.03)))
    acts = dict(zip(names, actions, strict=False))
    out = alloc.allocate(rng.uniform(0, 1, 2), acts)
    w = np.array([out.weights[s] for s in names])
    assert (w >= 0).all()
    assert w.sum() + out.cash == pytest.approx(1.0, abs=1e-9)
    live = [s for s in names if acts[s] is not FreshnessAction.KILL]
    assert all(out.weights[s] == 0.0 for s in names if s not in live)
    his = {s: cap / 2 if acts[s] is FreshnessAction.DEMOTE else cap for s in live}
    lo = min(floor, 1 / len(live)) if live else 0.0
    for s in live:
        assert min(lo, his[s]) - 1e-9 <= out.weights[s] <= his[s] + 1e-9
    if sum(his.values()) >= 1.0:
        assert out.cash == pytest.approx(0.0, abs=1e-9)
    free = [s for s in live if min(lo, his[s]) + 1e-6 < out.weights[s] < his[s] - 1e-6]
    for s, t in itertools.pairwise(free):  # unclipped arms keep the softmax ratios
        log_ratio = (out.scores[s] - out.scores[t]) / temperature
        assert math.log(out.weights[s] / out.weights[t]) == pytest.approx(log_ratio, abs=1e-6)


def test_zero_floor_with_scores_far_apart_still_places_all_capital() -> None:
    """Softmax weights of 1e-700 underflow; the fit works in log space and still fills the
    second arm up to what the first arm's cap leaves."""
    cfg = AllocationConfig(floor=0.0, cap=0.4, temperature=1e-6, alpha=0.0)
    alloc = LinUCBAllocator.create(["a", "b", "c"], n_features=1, config=cfg)
    for name, reward in (("a", 0.03), ("b", 0.02), ("c", 0.01)):
        alloc = alloc.update(name, [1.0], reward)
    out = alloc.allocate([1.0])
    assert out.weights == pytest.approx({"a": 0.4, "b": 0.4, "c": 0.2})
    assert out.cash == 0.0


# --------------------------------------------------------------------------------- freshness


def _walk(r: np.ndarray, start: int, step: int = 2) -> list[FreshnessAction]:
    return [freshness(r[:t]).action for t in range(start, r.size + 1, step)]


def test_a_strategy_whose_mean_flips_negative_is_demoted_then_killed() -> None:
    rng = np.random.default_rng(11)
    r = np.concatenate([rng.normal(0.004, 0.01, 200), rng.normal(-0.004, 0.01, 120)])
    before = _walk(r[:200], 80, 5)
    assert set(before) == {FreshnessAction.ACTIVE}
    after = _walk(r, 200)
    first_demote = after.index(FreshnessAction.DEMOTE)
    first_kill = after.index(FreshnessAction.KILL)
    assert first_demote < first_kill
    assert first_kill * 2 <= 60  # killed within 60 losing-regime trades
    assert after[-1] is FreshnessAction.KILL
    final = freshness(r)
    assert final.score < 0.2 and final.cusum > 10.0
    assert final.reason.startswith("kill")


def test_a_stationary_positive_strategy_stays_active() -> None:
    r = np.random.default_rng(5).normal(0.005, 0.01, 400)
    assert set(_walk(r, 80, 4)) == {FreshnessAction.ACTIVE}
    final = freshness(r)
    assert final.windows_since_profit == 0
    assert final.sharpe_ratio is not None and final.sharpe_ratio > 0


def test_too_few_trades_is_active_even_when_all_lose() -> None:
    out = freshness([-0.01] * 79)
    assert out.action is FreshnessAction.ACTIVE and out.score == 1.0
    assert out.reason.startswith("insufficient evidence")
    assert freshness([-0.01] * 80).action is FreshnessAction.KILL


def test_freshness_components_golden() -> None:
    cfg = FreshnessConfig(min_trades=30, recent_window=10, profit_window=5, stale_windows=2)
    rng = np.random.default_rng(2)
    r = np.concatenate([rng.normal(0.01, 0.01, 30), rng.normal(-0.005, 0.01, 10)])
    out = freshness(r, cfg)
    ref, recent = r[:30], r[30:]
    sharpe = lambda a: a.mean() / a.std(ddof=1)  # noqa: E731
    s, target = 0.0, max(ref.mean(), 0) / 2
    for v in r:
        s = max(0.0, s + (target - v) / ref.std(ddof=1))
    stale = 0
    for end in range(40, 0, -5):
        if r[end - 5 : end].sum() > 0:
            break
        stale += 1
    c_sharpe = min(max(sharpe(recent) / sharpe(ref), 0), 1)
    expected = (c_sharpe + 1 - min(s / 10, 1) + 1 - min(stale / 2, 1)) / 3
    assert out.sharpe_ratio == pytest.approx(sharpe(recent) / sharpe(ref))
    assert out.cusum == pytest.approx(s)
    assert out.windows_since_profit == stale
    assert out.score == pytest.approx(expected)


def test_freshness_rejects_bad_input() -> None:
    with pytest.raises(EngineError, match="not finite"):
        freshness([0.01] * 50 + [math.nan] + [0.01] * 50)
    with pytest.raises(EngineError, match="1-D"):
        freshness(np.zeros((90, 2)))
    with pytest.raises(EngineError, match="invalid configuration"):
        FreshnessConfig(min_trades=20, recent_window=20)
    constant = freshness([0.001] * 100)  # zero variance: no NaN, still fresh
    assert constant.action is FreshnessAction.ACTIVE and math.isfinite(constant.score)
