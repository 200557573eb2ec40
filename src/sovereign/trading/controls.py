"""The gate-side control library: proposals whose right verdict is known, on seeded markets.

- **Positive controls**: a market with a planted inefficiency and the proposal that fixes it.
  Each must be ACCEPTED by :func:`sovereign.trading.gate.evaluate` with the default
  ``GateConfig``; ``make_clean_data`` builds the same market without the inefficiency, where the
  same proposal must NOT pass (so an acceptance is owed to the inefficiency, not to the rule).
- **Gate negative controls**: proposals the gate alone (no constitution validator in front of
  it) must REJECT, each with the code(s) in ``expected_codes`` among its reasons.

``quick=True`` builds 1100-bar markets (800 judged bars after 300 of history), ``quick=False``
2300 bars; both run the gate's default configuration, stress scenarios included. Every control
names the ``seed`` it was validated with: run ``make_data(control.seed)`` and
``evaluate(..., control.seed, trials=control.trials)``. The noise-fitted control's rule is
fitted on ``make_data(control.seed)`` when the list is built (one backtest).

The controls are statistical: a planted inefficiency is found on most seeds, not all (a seed
whose judged window never enters the planted regime gives the gate nothing to see), and a clean
market passes a rule now and then at the CI's own false-alarm rate. Measured on seeds 1-5 of
the quick markets: positives accepted in 19 of 25 runs, their clean twins rejected in 24 of 25;
negatives rejected in 59 of 60 runs and with their expected code in 56 (the regime-degradation
control was accepted on seed 1 and rejected without its regime slice on seed 5; the breaker
control was rejected without a new breach on seeds 4 and 5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Literal

from sovereign.constitution import Constitution
from sovereign.market.bars import BarPanel
from sovereign.market.synthetic import random_walk
from sovereign.rules import (
    AddRule,
    All,
    Any_,
    AtrAbove,
    BlockSymbol,
    ConfidenceAbove,
    DayOfWeek,
    DrawdownAbove,
    ExitPosition,
    ModifyConstitution,
    Proposal,
    ProposalSource,
    Regime,
    RegimeIs,
    RetireRule,
    ReturnAbove,
    ReturnBelow,
    Rule,
    RuleSet,
    ScalePosition,
    SkipTrade,
    SymbolIn,
    TuneParameter,
)
from sovereign.trading import control_markets as cm
from sovereign.trading.backtest import BacktestConfig, RegimeConfig, prepare, run_backtest
from sovereign.trading.catalog import build
from sovereign.trading.gate import Baseline, GateData
from sovereign.trading.gate_report import (
    GATE_LOOKAHEAD,
    GATE_NOT_APPLICABLE,
    GATE_NOT_SIGNIFICANT,
    GATE_SLICE_DEGRADED,
    GATE_TOO_FEW_TRADES,
    GATE_TURNOVER,
)
from sovereign.trading.overlay import OverlayConfig
from sovereign.trading.pools import PoolConfig
from sovereign.trading.sizing import SizingConfig
from sovereign.trading.trader import TraderConfig

#: Regime fits from bar 250, refit every 250: the control markets are short.
CONTROL_REGIME = RegimeConfig(min_history=250, refit_every=250)
#: First judged bar: history for the regime fits before it.
HISTORY = 300
QUICK_BARS = 1100
FULL_BARS = 2300
#: Momentum on a quarter's lookback, so that it trades within the short control markets.
MOMENTUM = {"lookback": 63.0, "skip": 5.0}
FAST_MOMENTUM = {**MOMENTUM, "rebalance_bars": 5.0}


@dataclass(frozen=True, kw_only=True, slots=True)
class GateControl:
    """A proposal with a known right verdict on known data.

    ``expect``: "accept" or "reject"; ``expected_codes``: codes that must be among a rejection's
    reasons. ``make_data(seed)``: the data; ``make_clean_data(seed)``: for a positive control,
    the same market without the planted inefficiency (the proposal must not pass there).
    ``seed``: the seed the control was validated with. ``trials``: ideas tried to find the
    proposal (passed to ``evaluate``).
    """

    name: str
    description: str
    proposal: Proposal
    expect: Literal["accept", "reject"]
    expected_codes: tuple[str, ...]
    make_data: Callable[[int], GateData]
    baseline: Baseline
    seed: int = 1
    trials: int = 1
    make_clean_data: Callable[[int], GateData] | None = None


# -- data --------------------------------------------------------------------------------------


def gate_data(panel: BarPanel, overlay: OverlayConfig | None = None) -> GateData:
    """GateData for a control market: regimes (and the engines' overlay) fitted once, judged
    from bar :data:`HISTORY`."""
    return GateData(
        panel=panel,
        prepared=prepare(panel, CONTROL_REGIME, seed=0, overlay=overlay),
        start=panel.timestamps[HISTORY].to_pydatetime(),
    )


_MARKETS: dict[str, Callable[..., BarPanel]] = {
    "fake_breakout": cm.fake_breakout_market,
    "high_atr": cm.high_atr_market,
    "volatile_regime": cm.volatile_regime_market,
    "weekday_gap": cm.weekday_gap_market,
    "spike": cm.spike_market,
    "trending": cm.trending_market,
    "slides": cm.slides_market,
    "regime_mix": cm.regime_mix_market,
    "plain": lambda seed, n_bars: cm.market(seed, n_bars, 10),
    "random_walk": lambda seed, n_bars: random_walk(
        symbols=10, n_bars=n_bars, seed=seed, volatility=0.3, correlation=0.3, start=cm.START
    ),
}


LIMITS_OFF = OverlayConfig(enabled=False)
"""For a control whose planted inefficiency the engines already blunt (the crash sentinel stands
down in the same spells, joint sizing shrinks the same bets): the control measures the gate's
power, so its baseline runs the plain pipeline, without the overlay, portfolio sizing or pool
allocator."""


@lru_cache(maxsize=64)
def _data(
    kind: str, n_bars: int, planted: bool | None, seed: int, limits_off: bool = False
) -> GateData:
    build_market = _MARKETS[kind]
    overlay = LIMITS_OFF if limits_off else None
    if planted is None:
        return gate_data(build_market(seed, n_bars), overlay)
    return gate_data(build_market(seed, n_bars, planted=planted), overlay)


def _maker(
    kind: str, n_bars: int, planted: bool | None = None, limits_off: bool = False
) -> Callable[[int], GateData]:
    return partial(_load, kind, n_bars, planted, limits_off)


def _load(kind: str, n_bars: int, planted: bool | None, limits_off: bool, seed: int) -> GateData:
    return _data(kind, n_bars, planted, seed, limits_off)


def _baseline(
    strategies: tuple[str, ...],
    params: dict[str, dict[str, float]] | None = None,
    rules: tuple[Rule, ...] = (),
    constitution: Constitution | None = None,
    limits_off: bool = False,
) -> Baseline:
    backtest = BacktestConfig(regime=CONTROL_REGIME)
    if limits_off:
        plain = TraderConfig(sizing=SizingConfig(enabled=False), pools=PoolConfig(enabled=False))
        backtest = replace(backtest, overlay=LIMITS_OFF, trader=plain)
    return Baseline(
        ruleset=RuleSet(rules=rules),
        strategies=strategies,
        params=params or {},
        constitution=constitution or Constitution(),
        backtest=backtest,
    )


def _add(rule: Rule, rationale: str) -> AddRule:
    return AddRule(rule=rule, rationale=rationale, source=ProposalSource.HEURISTIC)


BOTH = ("regime_entry", "momentum")
FAKES = ("SYN06", "SYN07", "SYN08", "SYN09")


# -- positive controls -------------------------------------------------------------------------


def positive_controls(quick: bool) -> list[GateControl]:
    """Five planted inefficiencies and the proposals that fix them (expect "accept")."""
    n = QUICK_BARS if quick else FULL_BARS
    mom = _baseline(BOTH, {"momentum": MOMENTUM})
    return [
        GateControl(
            name="block_fake_breakout_symbols",
            description="four stocks whose every breakout fails at once: block them",
            proposal=_add(
                Rule(name="block-fakes", when=SymbolIn(symbols=FAKES), then=BlockSymbol(days=30)),
                "their breakouts reverse every time",
            ),
            expect="accept",
            expected_codes=(),
            make_data=_maker("fake_breakout", n, True),
            make_clean_data=_maker("fake_breakout", n, False),
            baseline=mom,
            seed=2,
        ),
        GateControl(
            name="skip_high_atr_losers",
            description="the high-ATR names drift down: skip entries above 2.5 % ATR",
            proposal=_add(
                Rule(
                    name="skip-wild",
                    when=AtrAbove(pct=2.5),
                    then=SkipTrade(reason="wild and falling"),
                ),
                "high-ATR entries lose",
            ),
            expect="accept",
            expected_codes=(),
            make_data=_maker("high_atr", n, True),
            make_clean_data=_maker("high_atr", n, False),
            baseline=mom,
        ),
        GateControl(
            name="skip_momentum_in_volatile_regime",
            description="what momentum buys in a volatile market falls: skip it there "
            "(judged on the plain pipeline: the engines blunt the same losses)",
            proposal=_add(
                Rule(
                    name="no-volatile-momentum",
                    strategy="momentum",
                    when=RegimeIs(regime=Regime.VOLATILE),
                    then=SkipTrade(reason="volatile entries lose"),
                ),
                "momentum entries in the volatile regime lose",
            ),
            expect="accept",
            expected_codes=(),
            make_data=_maker("volatile_regime", n, True, limits_off=True),
            make_clean_data=_maker("volatile_regime", n, False, limits_off=True),
            baseline=_baseline(("momentum",), {"momentum": FAST_MOMENTUM}, limits_off=True),
        ),
        GateControl(
            name="skip_wednesday_entries",
            description="Thursday opens gap up 4 % and fade: skip entries decided on Wednesday",
            proposal=_add(
                Rule(
                    name="no-wednesday",
                    when=DayOfWeek(days=(2,)),
                    then=SkipTrade(reason="Thursday gap"),
                ),
                "Wednesday entries fill at a gapped-up Thursday open",
            ),
            expect="accept",
            expected_codes=(),
            make_data=_maker("weekday_gap", n, True),
            make_clean_data=_maker("weekday_gap", n, False),
            baseline=_baseline(("regime_entry",)),
            seed=3 if quick else 2,
        ),
        GateControl(
            name="skip_spike_chasing",
            description="+6 % volume spikes are given back: skip entries on a day up more than 4 %",
            proposal=_add(
                Rule(
                    name="no-chasing",
                    when=ReturnAbove(pct=4.0, lag=0),
                    then=SkipTrade(reason="spikes revert"),
                ),
                "entries on spike days lose",
            ),
            expect="accept",
            expected_codes=(),
            make_data=_maker("spike", n, True),
            make_clean_data=_maker("spike", n, False),
            baseline=mom,
            seed=3 if quick else 1,
        ),
    ]


# -- negative controls -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _noise_fit(n_bars: int, seed: int, k: int = 3) -> tuple[tuple[str, ...], int]:
    """The ``k`` symbols whose baseline trades lost most on a random walk (the in-sample pick of
    an analyst reading a trade log), and how many such picks there were: C(10, k)."""
    data = _data("random_walk", n_bars, None, seed)
    panel = data.panel
    result = run_backtest(
        panel,
        build(BOTH, {"momentum": MOMENTUM}),
        config=BacktestConfig(regime=CONTROL_REGIME),
        prepared=data.prepared,
    )
    pnl: dict[str, float] = defaultdict(float)
    for t in result.trades:
        if t.entry_bar >= HISTORY:
            pnl[t.symbol] += t.pnl
    worst = tuple(sorted(sorted(pnl, key=lambda s: (pnl[s], s))[:k]))
    choices = 1
    for i in range(k):
        choices = choices * (panel.n_symbols - i) // (i + 1)
    return worst, choices


def gate_negative_controls(quick: bool) -> list[GateControl]:
    """Proposals the gate must reject on its own, each with its expected code."""
    n = QUICK_BARS if quick else FULL_BARS
    noise_seed = 2
    plain = _maker("plain", n)
    mom = _baseline(BOTH, {"momentum": MOMENTUM})
    worst, trials = _noise_fit(n, noise_seed)
    breaker = Rule(name="drawdown-breaker", when=DrawdownAbove(value=0.03), then=ExitPosition())
    block = Rule(name="block-fakes", when=SymbolIn(symbols=FAKES), then=BlockSymbol(days=30))
    always = ConfidenceAbove(value=0.0)
    return [
        GateControl(
            name="noise_fit_random_walk",
            description=f"skip the {len(worst)} symbols that lost most on a random walk, "
            f"picked in-sample from {trials} possible picks",
            proposal=_add(
                Rule(
                    name="skip-losers",
                    when=SymbolIn(symbols=worst),
                    then=SkipTrade(reason="they lose"),
                ),
                "these symbols lost money in our trades",
            ),
            expect="reject",
            expected_codes=(GATE_NOT_SIGNIFICANT,),
            make_data=_maker("random_walk", n),
            baseline=mom,
            seed=noise_seed,
            trials=trials,
        ),
        GateControl(
            name="churn_exit_every_bar",
            description="exit every position at the next bar: positions churn",
            proposal=_add(
                Rule(name="churn", when=always, then=ExitPosition()), "take profits early"
            ),
            expect="reject",
            expected_codes=(GATE_TURNOVER,),
            make_data=_maker("trending", n),
            baseline=_baseline(
                BOTH, {"regime_entry": {"volume_confirm_pct": 0.0}, "momentum": FAST_MOMENTUM}
            ),
        ),
        GateControl(
            name="peek_at_next_bar",
            description="exit positions whose NEXT bar falls more than 2 % (return_below, "
            "lag=-1): a great backtest that only the look-ahead guard can catch",
            proposal=_add(
                Rule(name="peek", when=ReturnBelow(pct=-2.0, lag=-1), then=ExitPosition()),
                "get out before the drops",
            ),
            expect="reject",
            expected_codes=(GATE_LOOKAHEAD,),
            make_data=plain,
            baseline=mom,
        ),
        GateControl(
            name="always_rebalance",
            description="momentum rebalances every 5 bars instead of 21: trade all the time",
            proposal=TuneParameter(
                strategy="momentum",
                parameter="rebalance_bars",
                value=5,
                rationale="react faster",
                source=ProposalSource.LLM,
            ),
            expect="reject",
            expected_codes=(GATE_TURNOVER,),
            make_data=_maker("trending", n),
            baseline=_baseline(("momentum",), {"momentum": MOMENTUM}),
        ),
        GateControl(
            name="degrade_ranging_regime",
            description="skip momentum in volatile AND ranging markets: avoids the volatile losses "
            "and gives up the ranging gains",
            proposal=_add(
                Rule(
                    name="no-volatile-or-ranging",
                    strategy="momentum",
                    when=Any_(
                        any=(RegimeIs(regime=Regime.VOLATILE), RegimeIs(regime=Regime.RANGING))
                    ),
                    then=SkipTrade(reason="choppy"),
                ),
                "momentum struggles without a trend",
            ),
            expect="reject",
            expected_codes=(GATE_SLICE_DEGRADED,),
            make_data=_maker("regime_mix", n),
            baseline=_baseline(("momentum",), {"momentum": FAST_MOMENTUM}),
            seed=4,
        ),
        GateControl(
            name="too_few_trades",
            description="skip one symbol on Tuesdays: a handful of trades at most",
            proposal=_add(
                Rule(
                    name="tuesday-syn03",
                    when=All(all=(SymbolIn(symbols=("SYN03",)), DayOfWeek(days=(1,)))),
                    then=SkipTrade(reason="bad Tuesdays"),
                ),
                "SYN03 did badly on a Tuesday",
            ),
            expect="reject",
            expected_codes=(GATE_TOO_FEW_TRADES,),
            make_data=plain,
            baseline=mom,
        ),
        GateControl(
            name="retire_drawdown_breaker",
            description="retire the rule that flattens at a 3 % drawdown, in a market of slides: "
            "much deeper drawdowns (the engines' limits now stop the account short of the hard "
            "stop, so it is the slices that degrade)",
            proposal=RetireRule(
                rule_id=breaker.id, rationale="it exits too often", source=ProposalSource.LLM
            ),
            expect="reject",
            expected_codes=(GATE_SLICE_DEGRADED,),
            make_data=_maker("slides", n),
            baseline=_baseline(
                BOTH,
                {"momentum": MOMENTUM},
                rules=(breaker,),
                constitution=Constitution(max_position_size=0.2),
            ),
        ),
        GateControl(
            name="halve_every_position",
            description="scale every position by 0.5: less money at risk, the same Sharpe",
            proposal=_add(
                Rule(name="half", when=always, then=ScalePosition(factor=0.5)), "less risk"
            ),
            expect="reject",
            expected_codes=(GATE_NOT_SIGNIFICANT,),
            make_data=plain,
            baseline=mom,
        ),
        GateControl(
            name="retire_protective_rule",
            description="retire the rule that blocks the fake-breakout stocks",
            proposal=RetireRule(
                rule_id=block.id, rationale="too restrictive", source=ProposalSource.LLM
            ),
            expect="reject",
            expected_codes=(GATE_NOT_SIGNIFICANT,),
            make_data=_maker("fake_breakout", n, True),
            baseline=_baseline(BOTH, {"momentum": MOMENTUM}, rules=(block,)),
        ),
        GateControl(
            name="change_constitution",
            description="raise max_drawdown: only a person may change the constitution",
            proposal=ModifyConstitution(
                field="max_drawdown",
                value=0.5,
                rationale="room to breathe",
                source=ProposalSource.LLM,
            ),
            expect="reject",
            expected_codes=(GATE_NOT_APPLICABLE,),
            make_data=plain,
            baseline=mom,
        ),
        GateControl(
            name="retire_unknown_rule",
            description="retire a rule that is not in the active rule set",
            proposal=RetireRule(
                rule_id="r-0123456789abcdef", rationale="stale", source=ProposalSource.CHAT
            ),
            expect="reject",
            expected_codes=(GATE_NOT_APPLICABLE,),
            make_data=plain,
            baseline=mom,
        ),
        GateControl(
            name="parameter_out_of_bounds",
            description="a momentum lookback beyond its declared bounds",
            proposal=TuneParameter(
                strategy="momentum",
                parameter="lookback",
                value=5000,
                rationale="longer",
                source=ProposalSource.LLM,
            ),
            expect="reject",
            expected_codes=(GATE_NOT_APPLICABLE,),
            make_data=plain,
            baseline=mom,
        ),
    ]


__all__ = [
    "CONTROL_REGIME",
    "FULL_BARS",
    "HISTORY",
    "QUICK_BARS",
    "GateControl",
    "gate_data",
    "gate_negative_controls",
    "positive_controls",
]
