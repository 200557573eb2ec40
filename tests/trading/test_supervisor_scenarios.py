"""Supervisor scenarios on hand-written bars, through the real Trader and paper exchange."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from sovereign.brokers.models import AccountReport
from sovereign.constitution import Constitution
from sovereign.trading.events import Decision, Transition
from sovereign.trading.strategy import MarketView
from sovereign.trading.supervisor import Supervisor, SupervisorState
from sovereign.trading.trader import Trader, TraderConfig
from tests.trading.scenario import Scripted, panel, prepared, run

SYMBOLS = [f"S{k:02d}" for k in range(20)]


def test_ten_percent_drawdown_flattens_halts_and_survives_a_restart() -> None:
    # 20 symbols bought at 5% each on bar 1 (fills bar 2); on bar 4 everything gaps down 12%:
    # the drawdown check comes before the day-loss check, so this halts outright.
    path = [100.0, 100.0, 100.0, 100.0, 88.0, 88.0, 88.0, 88.0]
    p = panel({s: path for s in SYMBOLS})
    result, sink = run(p, [Scripted({1: SYMBOLS})])
    halts = [t for t in result.transitions if t.to_state == "HALTED"]
    assert len(halts) == 1 and "drawdown" in halts[0].reason
    assert [t.to_state for t in result.transitions] == ["HALTED"]
    halt_bar = list(p.timestamps).index(halts[0].timestamp)
    flatten = [d for d in sink.of(Decision) if d.reason.startswith("flatten")]
    assert {d.symbol for d in flatten} == set(SYMBOLS)
    assert all(d.timestamp == halts[0].timestamp for d in flatten)
    assert len(result.trades) == 20 and all(t.exit_bar == halt_bar + 1 for t in result.trades)
    assert result.open_positions == []

    # restart: the persisted snapshot restores HALTED, and no new position is opened
    snapshot = sink.of(Transition)  # transitions were emitted for persistence
    assert snapshot[-1].to_state == "HALTED"
    sup = Supervisor(constitution=Constitution())
    sup.halt(halts[0].timestamp, halts[0].reason)
    restored = Supervisor.restore(Constitution(), sup.snapshot())
    assert restored.state is SupervisorState.HALTED
    p2 = panel({s: [100.0] * 5 for s in SYMBOLS})
    trader = Trader(
        strategies=[Scripted({1: SYMBOLS})], supervisor=restored, initial_equity=100_000.0
    )
    prep = prepared(p2)
    acct = AccountReport(
        cash=100_000.0,
        equity=100_000.0,
        gross_exposure=0.0,
        net_exposure=0.0,
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        timestamp=p2.timestamps[1].to_pydatetime(),
    )
    view = MarketView(
        i=1,
        timestamp=p2.timestamps[1].to_pydatetime(),
        panel=p2,
        features=prep.features,
        regime=prep.regimes.regime[1],
        regime_confidence=1.0,
        prev_regime=prep.regimes.regime[0],
    )
    assert trader.step(view, acct, view.timestamp) == []
    assert restored.state is SupervisorState.HALTED  # only a person resumes
    assert restored.resume(view.timestamp, "alice", equity=100_000.0) is not None
    assert len(trader.step(view, acct, view.timestamp)) == 20


def test_three_percent_day_loss_blocks_new_positions_for_that_day_only() -> None:
    # hourly bars over two days; 20 symbols bought at 5% each at 09:00 (filled 10:00); at 12:00
    # everything is down 4% (account -4%): REDUCING. A signal at 13:00 is blocked; the same
    # signal on the next day goes through.
    hours = 48
    path = np.full(hours, 100.0)
    path[12:] = 96.0
    p = panel(
        {**{s: path for s in SYMBOLS}, "LATE": np.full(hours, 50.0)},
        freq="1h",
        start="2024-01-02 00:00",
    )
    late_today, late_tomorrow = 13, 24 + 13
    strat = Scripted({9: SYMBOLS, late_today: ["LATE"], late_tomorrow: ["LATE"]})
    result, sink = run(p, [strat])
    states = [(t.timestamp.hour, t.timestamp.day, t.to_state) for t in result.transitions]
    assert (12, 2, "REDUCING") in states
    assert (0, 3, "NORMAL") in states
    late = [d for d in sink.of(Decision) if d.symbol == "LATE"]
    assert [d.outcome for d in late] == ["blocked", "ordered"]
    assert "REDUCING" in late[0].reason
    assert late[1].timestamp == p.timestamps[late_tomorrow]


def test_stale_data_places_no_order() -> None:
    p = panel({"A": [10.0] * 5})
    prep = prepared(p)
    trader = Trader(
        strategies=[Scripted({3: ["A"]})],
        supervisor=Supervisor(constitution=Constitution()),
        config=TraderConfig(max_staleness=timedelta(days=2)),
        initial_equity=10_000.0,
    )
    ts = p.timestamps[3].to_pydatetime()
    view = MarketView(
        i=3,
        timestamp=ts,
        panel=p,
        features=prep.features,
        regime=prep.regimes.regime[3],
        regime_confidence=1.0,
        prev_regime=prep.regimes.regime[2],
    )
    acct = AccountReport(
        cash=1e4,
        equity=1e4,
        gross_exposure=0.0,
        net_exposure=0.0,
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        timestamp=ts,
    )
    assert trader.step(view, acct, ts + timedelta(days=5)) == []
    assert len(trader.step(view, acct, ts + timedelta(hours=1))) == 1


def test_corrupted_engine_output_stands_down() -> None:
    p = panel({"A": [10.0] * 5})
    prep = prepared(p)
    trader = Trader(
        strategies=[Scripted({3: ["A"]})],
        supervisor=Supervisor(constitution=Constitution()),
        initial_equity=10_000.0,
    )
    ts = p.timestamps[3].to_pydatetime()
    acct = AccountReport(
        cash=1e4,
        equity=1e4,
        gross_exposure=0.0,
        net_exposure=0.0,
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        timestamp=ts,
    )
    for bad in (float("nan"), 1.7, float("inf")):
        view = MarketView(
            i=3,
            timestamp=ts,
            panel=p,
            features=prep.features,
            regime=prep.regimes.regime[3],
            regime_confidence=bad,
            prev_regime=prep.regimes.regime[2],
        )
        assert trader.step(view, acct, ts) == []


def test_one_strategy_pool_loss_kills_only_that_strategy() -> None:
    # "fragile" buys CRASH (falls 40%), "steady" buys FLAT later; fragile's pool limit is 1%.
    n = 12
    crash = [100.0, 100.0, 100.0, 60.0] + [60.0] * (n - 4)
    p = panel({"CRASH": crash, "FLAT": [20.0] * n, "LATER": [30.0] * n})
    fragile = Scripted(
        {1: ["CRASH"], 6: ["LATER"]}, name="fragile", pool_fraction=0.5, pool_max_loss=0.01
    )
    steady = Scripted({6: ["FLAT"]}, name="steady", pool_fraction=0.5, pool_max_loss=0.5)
    result, sink = run(p, [fragile, steady])
    kills = [t for t in result.transitions if t.to_state == "KILLED"]
    assert [k.scope for k in kills] == ["strategy:fragile"]
    assert not [t for t in result.transitions if t.scope == "global"]
    by = {(d.strategy, d.symbol): d for d in sink.of(Decision) if d.action == "enter"}
    assert by[("steady", "FLAT")].outcome == "ordered"
    assert (
        by[("fragile", "LATER")].outcome == "blocked"
        and "killed" in by[("fragile", "LATER")].reason
    )
    assert [t.symbol for t in result.trades] == ["CRASH"]
    assert (
        result.per_strategy["fragile"]["killed"] == 1.0
        and result.per_strategy["steady"]["killed"] == 0.0
    )


def test_drawdown_near_the_hard_stop_cuts_losers_and_halves_new_risk() -> None:
    # -2.5% a day: no day loses 3%, but at 6% drawdown (0.6 x 10%) the Supervisor goes REDUCING,
    # losing positions are closed, new ones are capped at half size, the hard stop is never hit.
    path = [100.0, 100.0, 100.0] + [100.0 * 0.975**k for k in range(1, 9)]
    p = panel({**{s: path for s in SYMBOLS}, "LATE": [50.0] * len(path)})
    result, sink = run(p, [Scripted({1: SYMBOLS, 6: ["LATE"]})])
    assert [t.to_state for t in result.transitions] == ["REDUCING"]
    assert "drawdown" in result.transitions[0].reason
    cut = [d for d in sink.of(Decision) if d.reason.startswith("de-risk")]
    assert {d.symbol for d in cut} == set(SYMBOLS)
    assert result.metrics["max_drawdown"] < 0.10
    late = [d for d in sink.of(Decision) if d.symbol == "LATE"]
    assert [d.outcome for d in late] == ["ordered"]
    assert late[0].inputs["fraction"] == 0.025  # half the 5% cap
