"""The Trader's engine hooks in a backtest: sliced entries on thin volume, and the pool
allocator's rebalances and kills."""

from __future__ import annotations

from dataclasses import replace

from sovereign.brokers.models import Order
from sovereign.engines.allocation import FreshnessConfig
from sovereign.market.synthetic import generate
from sovereign.trading.backtest import BacktestConfig, RegimeConfig, prepare, run_backtest
from sovereign.trading.catalog import build
from sovereign.trading.events import Decision, ListSink, OrderSubmitted, Transition
from sovereign.trading.pools import PoolConfig
from sovereign.trading.trader import TraderConfig

MARKET = generate(symbols=6, n_bars=1200, seed=21, start="2015-01-01").panel
REGIME = RegimeConfig(min_history=300, refit_every=250)
PREPARED = prepare(MARKET, REGIME, seed=1)
STRATEGIES = ("regime_entry", "momentum")


def run(panel=MARKET, prepared=PREPARED, trader: TraderConfig | None = None) -> tuple:
    sink = ListSink()
    result = run_backtest(
        panel,
        build(STRATEGIES),
        config=BacktestConfig(seed=3, regime=REGIME, trader=trader or TraderConfig()),
        prepared=prepared,
        sink=sink,
    )
    decisions = [e for e in sink.events if isinstance(e, Decision)]
    return result, sink.events, decisions


def test_entries_above_the_participation_threshold_are_worked_over_several_bars() -> None:
    thin = replace(MARKET, volume=MARKET.volume * 3e-4)
    result, events, decisions = run(thin, prepare(thin, REGIME, seed=1))
    firsts = [d for d in decisions if d.action == "enter" and "slices" in d.inputs]
    children = [d for d in decisions if d.reason.startswith("working the entry")]
    assert firsts and children
    assert all(d.inputs["slices"] >= 2 for d in firsts)
    orders: list[Order] = [e.order for e in events if isinstance(e, OrderSubmitted)]
    ids = [o.client_order_id for o in orders]
    assert len(ids) == len(set(ids))  # every child has its own deterministic id
    # a child never comes after its position was exited: those are cancelled and recorded
    cancels = [d for d in decisions if d.action == "cancel"]
    assert all("unsent shares" in d.reason for d in cancels)
    assert result.trades and all(t.quantity > 0 for t in result.trades)
    # the same run on the real volume needs no slicing
    _, _, plain = run()
    assert not [d for d in plain if d.reason.startswith("working the entry")]


def test_the_pool_allocator_rebalances_and_kills_a_decayed_pool() -> None:
    _, _, decisions = run()
    rebalances = [d for d in decisions if d.action == "allocate"]
    assert len(rebalances) >= (MARKET.n_bars - 30) // 21 - 2
    assert set(rebalances[-1].inputs["scales"]) == set(STRATEGIES)

    eager = PoolConfig(
        min_periods=1,
        freshness=FreshnessConfig(
            min_trades=12,
            recent_window=2,
            profit_window=1,
            stale_windows=1,
            demote_below=0.99,
            kill_below=0.99,
        ),
    )
    result, events, decisions = run(trader=TraderConfig(pools=eager))
    kills = [e for e in events if isinstance(e, Transition) and "edge decayed" in e.reason]
    assert kills and all(k.scope.startswith("strategy:") and k.to_state == "KILLED" for k in kills)
    killed = {k.scope.split(":", 1)[1]: k.timestamp for k in kills}
    for trade in result.trades:  # a killed pool opens nothing afterwards
        assert trade.strategy not in killed or trade.entry_time <= killed[trade.strategy]
