"""Counterfactuals on hand-written bars: a rule that removes one known losing trade."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sovereign.brokers.paper_exchange import PaperConfig
from sovereign.constitution import Constitution
from sovereign.rules import (
    ModifyConstitution,
    ProposalSource,
    RetireRule,
    Rule,
    RuleSet,
    SkipTrade,
    SymbolIn,
    TuneParameter,
)
from sovereign.trading.backtest import BacktestConfig, run_backtest
from sovereign.trading.catalog import build
from sovereign.trading.counterfactual import counterfactual
from sovereign.trading.strategy import HeldPosition, MarketView, Signal
from tests.trading.scenario import Scripted, panel, prepared

CONFIG = BacktestConfig(cash=100_000.0, paper=PaperConfig(costs="simple", commission_rate=0.001))
SKIP_B = Rule(name="no B", when=SymbolIn(symbols=("B",)), then=SkipTrade(reason="B loses"))


class Timed(Scripted):
    """Scripted entries held for two bars."""

    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        return [
            Signal(
                symbol=s.symbol,
                side=1,
                confidence=s.confidence,
                reason="scripted",
                equity_fraction=1.0,
                max_hold_bars=2,
            )
            for s in super().entries(view, held)
        ]


# A: bought on bar 1 (filled at bar 2's open, 100), exit decided on bar 4, filled at bar 5's
# open (110): a win. B: bought on bar 6 (filled at 100 on bar 7), exit decided on bar 9,
# filled at bar 10's open (90): a loss. Each bar opens at the previous close.
BARS = panel(
    {
        "A": [100, 100, 100, 105, 110, 110, 110, 110, 110, 110, 110, 110, 110, 110],
        "B": [100, 100, 100, 100, 100, 100, 100, 100, 95, 90, 90, 90, 90, 90],
    }
)
PREP = prepared(BARS)


def strategies(_: RuleSet) -> list[Timed]:
    return [Timed({1: ["A"], 6: ["B"]})]


def test_a_rule_that_skips_a_losing_trade_gains_exactly_that_trade() -> None:
    cf = counterfactual(SKIP_B, panel=BARS, prepared=PREP, strategies=strategies, config=CONFIG)
    assert cf.baseline.trades == 2 and cf.candidate.trades == 1
    (lost,) = cf.removed
    assert (lost.symbol, lost.entry_bar, lost.exit_bar) == ("B", 7, 10)
    assert (lost.entry_price, lost.exit_price) == (100.0, 90.0)
    assert lost.pnl < 0 and lost.commission > 0  # net of both sides' commission
    assert cf.added == () and cf.changed == ()
    assert cf.pnl_difference == pytest.approx(-lost.pnl, rel=1e-12)
    assert cf.baseline.pnl == pytest.approx(cf.baseline.realized_pnl)  # everything closed
    assert cf.candidate.win_rate == 1.0 and cf.baseline.win_rate == 0.5
    assert cf.candidate.max_drawdown < cf.baseline.max_drawdown
    assert cf.rule_value(SKIP_B.id) == pytest.approx(-lost.pnl)
    assert cf.candidate_ruleset.rules == (SKIP_B,) and cf.baseline_ruleset.rules == ()
    payload = json.loads(json.dumps(cf.to_json()))
    assert payload["removed"][0]["symbol"] == "B"
    assert payload["pnl_difference"] == pytest.approx(-lost.pnl)


def test_an_active_rule_is_compared_with_the_rule_set_without_it() -> None:
    active = RuleSet(rules=(SKIP_B,))
    fresh = counterfactual(SKIP_B, panel=BARS, prepared=PREP, strategies=strategies, config=CONFIG)
    again = counterfactual(
        SKIP_B, panel=BARS, prepared=PREP, strategies=strategies, config=CONFIG, ruleset=active
    )
    assert again.pnl_difference == fresh.pnl_difference
    retire = RetireRule(
        rule_id=SKIP_B.id, rationale="test", source=ProposalSource.HUMAN, expected_effect=None
    )
    cf = counterfactual(
        retire, panel=BARS, prepared=PREP, strategies=strategies, config=CONFIG, ruleset=active
    )
    (back,) = cf.added  # retiring the rule lets the losing trade back in
    assert back.symbol == "B" and cf.removed == ()
    assert cf.pnl_difference == pytest.approx(back.pnl)
    assert (
        cf.rule_value(SKIP_B.id) == pytest.approx(-back.pnl) == pytest.approx(fresh.pnl_difference)
    )
    assert cf.rule_value("r-0123456789abcdef") is None


def test_strategy_names_are_built_fresh_with_tuned_parameters() -> None:
    t = np.arange(160)
    bars = panel({"S": 100 + 10 * np.sin(t / 9.0), "T": 100 + 8 * np.sin(t / 13.0 + 1)})
    prep = prepared(bars)
    tune = TuneParameter(
        strategy="sma_cross",
        parameter="fast",
        value=5,
        rationale="test",
        source=ProposalSource.HUMAN,
    )
    cf = counterfactual(tune, panel=bars, prepared=prep, strategies=["sma_cross"], config=CONFIG)
    assert cf.candidate_ruleset.params == {"sma_cross": {"fast": 5}}
    direct = [
        run_backtest(bars, build(["sma_cross"], p), config=CONFIG, prepared=prep)
        for p in ({}, {"sma_cross": {"fast": 5}})
    ]
    assert cf.baseline.final_equity == direct[0].final_equity
    assert cf.candidate.final_equity == direct[1].final_equity
    assert cf.baseline.trades > 0 and cf.baseline.final_equity != cf.candidate.final_equity
    assert cf.rule_value("r-0123456789abcdef") is None  # parameters differ: not one rule's value
    assert all(math.isfinite(x) for x in (cf.baseline.sharpe, cf.candidate.max_drawdown))


def test_a_constitution_change_has_no_counterfactual() -> None:
    change = ModifyConstitution(
        field="max_position_size", value=0.5, rationale="test", source=ProposalSource.HUMAN
    )
    with pytest.raises(ValueError, match="constitution"):
        counterfactual(
            change,
            panel=BARS,
            prepared=PREP,
            strategies=strategies,
            config=CONFIG,
            constitution=Constitution(),
        )
