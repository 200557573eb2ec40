"""Trading: the Trader (one decision pipeline for backtest, paper and live), the Supervisor (the
risk authority), the backtester and the backtest gate."""

from sovereign.trading.backtest import BacktestConfig, BacktestResult, prepare, run_backtest
from sovereign.trading.gate import Baseline, GateConfig, GateData, evaluate
from sovereign.trading.gate_report import GateReport
from sovereign.trading.gate_runs import GateCache
from sovereign.trading.supervisor import Supervisor, SupervisorState
from sovereign.trading.trader import Trader, TraderConfig

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Baseline",
    "GateCache",
    "GateConfig",
    "GateData",
    "GateReport",
    "Supervisor",
    "SupervisorState",
    "Trader",
    "TraderConfig",
    "evaluate",
    "prepare",
    "run_backtest",
]
