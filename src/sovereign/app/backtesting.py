"""`sovereign backtest`: load data, build strategies and rules, run the backtester."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from sovereign.brokers.paper_exchange import PaperConfig
from sovereign.constitution import Constitution
from sovereign.constitution import load as load_constitution
from sovereign.errors import ConfigError, DataError
from sovereign.market.bars import BarPanel
from sovereign.market.files import load_file
from sovereign.market.sources import load_sample
from sovereign.rules.rule import Rule, RuleSet
from sovereign.trading.backtest import BacktestConfig, BacktestResult, run_backtest
from sovereign.trading.catalog import DEFAULT_STRATEGIES, build, parse_params

# Limits for research runs only (`--no-limits`): wide enough never to bind.
RESEARCH_CONSTITUTION = Constitution(
    max_position_size=1.0,
    max_daily_loss=1.0,
    max_drawdown=1.0,
    min_confidence_for_trade=0.0,
    max_orders_per_day=100_000,
    max_gross_exposure=10.0,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BacktestRequest:
    strategies: tuple[str, ...] = ()
    data: Path | None = None
    universe: str = "sp500"
    symbols: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    commission: float = 0.0005
    cash: float = 1_000_000.0
    costs: str = "realistic"
    rules_file: Path | None = None
    no_limits: bool = False
    seed: int = 42
    constitution_path: Path | None = None

    def describe(self) -> str:
        names = ", ".join(self.strategies or DEFAULT_STRATEGIES)
        source = str(self.data) if self.data else f"sample '{self.universe}'"
        return f"{names} on {source}"


def load_panel(
    data: Path | None,
    universe: str,
    symbols: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
) -> BarPanel:
    panel = load_file(data) if data is not None else load_sample(universe)
    if symbols:
        missing = [s for s in symbols if s not in panel.symbols]
        if missing:
            raise DataError(
                f"symbols {missing} not in the data (available: {', '.join(panel.symbols)})",
                source=str(data or universe),
                column="symbol",
            )
        panel = panel.select(list(symbols))
    panel = panel.between(start, end)
    if panel.n_bars < 2:
        raise DataError("fewer than 2 bars in the selected period", source=str(data or universe))
    return panel


def load_rules(path: Path | None) -> RuleSet:
    if path is None:
        return RuleSet()
    try:
        raw = json.loads(path.read_text())
        rules = TypeAdapter(list[Rule]).validate_python(raw)
    except OSError as err:
        raise ConfigError(f"rules file {path} cannot be read: {err}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"rules file {path} is not JSON: {err}") from err
    except ValidationError as err:
        raise ConfigError(f"rules file {path} has invalid rules: {err}") from err
    return RuleSet(rules=tuple(rules))


def run_request(req: BacktestRequest) -> BacktestResult:
    names = req.strategies or DEFAULT_STRATEGIES
    strategies = build(names, parse_params(req.params, names))
    panel = load_panel(req.data, req.universe, req.symbols, req.start, req.end)
    if req.no_limits:
        constitution = RESEARCH_CONSTITUTION
        strategies = [
            type(s)(s.config.model_copy(update={"pool_max_loss": 1.0})) for s in strategies
        ]
    else:
        constitution, _ = load_constitution(req.constitution_path)
    try:
        paper = PaperConfig(costs=req.costs, commission_rate=req.commission)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ConfigError(f"invalid cost settings: {err}") from err
    config = BacktestConfig(cash=req.cash, seed=req.seed, paper=paper)
    return run_backtest(
        panel,
        strategies,
        rules=load_rules(req.rules_file),
        constitution=constitution,
        config=config,
    )
