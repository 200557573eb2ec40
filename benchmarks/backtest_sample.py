"""The full sample backtest: 20 stocks, 1990–2022, both strategies, 10 active rules, realistic
costs with partial fills. Goal: at most 2 s after imports (the loop), on 2 cores.

Preparing the panel (features + walk-forward regime HMM fits) is measured separately: `sovereign
run` caches the regime path on disk, so a replay pays it once per data set.
"""

from __future__ import annotations

from benchmarks._timing import measure, report
from sovereign.brokers.paper_exchange import PaperConfig
from sovereign.market.sources import load_sample
from sovereign.rules import (
    AtrAbove,
    ConfidenceBelow,
    ConsecutiveLossesAbove,
    DayOfWeek,
    DrawdownAbove,
    Regime,
    RegimeIs,
    Rule,
    RuleSet,
    ScalePosition,
    SetTakeProfit,
    SkipTrade,
    TightenStop,
)
from sovereign.trading.backtest import BacktestConfig, prepare, run_backtest
from sovereign.trading.catalog import build

TEN_RULES = RuleSet(
    rules=(
        Rule(
            name="no-volatile",
            when=RegimeIs(regime=Regime.VOLATILE),
            then=SkipTrade(reason="volatile"),
        ),
        Rule(
            name="half-uncertain",
            when=RegimeIs(regime=Regime.UNCERTAIN),
            then=ScalePosition(factor=0.5),
        ),
        Rule(name="wild-atr", when=AtrAbove(pct=4.0), then=ScalePosition(factor=0.5)),
        Rule(name="weak-conf", when=ConfidenceBelow(value=0.5), then=ScalePosition(factor=0.7)),
        Rule(name="dd-tight", when=DrawdownAbove(value=0.04), then=TightenStop(atr_mult=1.0)),
        Rule(name="streak", when=ConsecutiveLossesAbove(count=5), then=ScalePosition(factor=0.5)),
        Rule(name="friday", when=DayOfWeek(days=(4,)), then=ScalePosition(factor=0.8)),
        Rule(
            name="tp-range", when=RegimeIs(regime=Regime.RANGING), then=SetTakeProfit(atr_mult=2.0)
        ),
        Rule(
            name="down-tight",
            when=RegimeIs(regime=Regime.TRENDING_DOWN),
            then=TightenStop(atr_mult=1.2),
        ),
        Rule(
            name="mom-dd",
            strategy="momentum",
            when=DrawdownAbove(value=0.07),
            then=ScalePosition(factor=0.5),
        ),
    )
)


def main() -> None:
    panel = load_sample("sp500")
    prepared = prepare(panel)
    config = BacktestConfig(paper=PaperConfig(costs="realistic", participation_cap=0.1))

    def once() -> None:
        run_backtest(
            panel,
            build(["regime_entry", "momentum"]),
            rules=TEN_RULES,
            config=config,
            prepared=prepared,
        )

    result = run_backtest(
        panel,
        build(["regime_entry", "momentum"]),
        rules=TEN_RULES,
        config=config,
        prepared=prepared,
    )
    halts = [f"{t.timestamp:%Y-%m-%d}" for t in result.transitions if t.to_state == "HALTED"]
    print(
        f"# sp500 sample: {panel.n_bars} bars x {panel.n_symbols} symbols, halted on {halts or 'never'}, "
        f"{len(result.trades)} round trips, {result.orders} orders, 10 active rules"
    )
    report("full sample backtest (loop, prepared panel)", measure(once, repeat=5), goal=2.0)
    from sovereign.app.backtesting import RESEARCH_CONSTITUTION

    def unhalted() -> None:  # the same work without a halt, so every bar trades
        run_backtest(
            panel,
            build(["regime_entry", "momentum"]),
            rules=TEN_RULES,
            config=config,
            prepared=prepared,
            constitution=RESEARCH_CONSTITUTION,
        )

    report("full sample backtest, wide limits (never halts)", measure(unhalted, repeat=5), goal=2.0)
    report(
        "prepare: features + walk-forward regime fits",
        measure(lambda: prepare(panel), repeat=3, warmup=0),
    )


if __name__ == "__main__":
    main()
