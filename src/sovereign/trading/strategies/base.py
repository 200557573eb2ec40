"""Shared plumbing for built-in strategies: parameter validation and confidence calibration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from sovereign.rules.config import ParamSpec, StrategyConfig
from sovereign.trading.strategy import HeldPosition, MarketView, Signal


class BaseStrategy(ABC):
    """Holds a validated :class:`StrategyConfig` and a Beta-binomial calibration of confidence.

    Confidence is calibrated from the strategy's own closed trades: each (regime) bucket keeps a
    Beta(a, b) posterior of the win rate, seeded by a prior worth ``prior_weight`` trades at the
    raw score. A bucket with no history returns the raw score; one with a long losing record is
    pulled down towards its observed hit rate, and the Supervisor's minimum confidence does the
    rest.
    """

    name: ClassVar[str] = "base"
    specs: ClassVar[dict[str, ParamSpec]] = {}
    prior_weight: ClassVar[float] = 20.0

    def __init__(self, config: StrategyConfig | None = None, **params: float) -> None:
        base = config or StrategyConfig(strategy=self.name, params=params)
        if config is not None and params:
            base = base.model_copy(update={"params": {**base.params, **params}})
        self.config = base.validated(self.specs)
        self.p = self.config.params
        self._wins: dict[str, float] = {}
        self._trades: dict[str, float] = {}

    @property
    @abstractmethod
    def warmup_bars(self) -> int:
        """Bars of history the strategy needs before its first signal."""

    @abstractmethod
    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        """Entry signals at bar ``view.i`` for symbols not in ``held``."""

    @abstractmethod
    def exit_reason(self, view: MarketView, position: HeldPosition) -> str | None:
        """Why to close ``position`` now, or None (stops and targets are the Trader's)."""

    def adopt_calibration(self, other: BaseStrategy) -> None:
        """Carry ``other``'s trade record over (a parameter change is not a new strategy)."""
        self._wins = dict(other._wins)
        self._trades = dict(other._trades)

    def calibrate(self, regime: str, won: bool) -> None:
        self._trades[regime] = self._trades.get(regime, 0.0) + 1.0
        self._wins[regime] = self._wins.get(regime, 0.0) + (1.0 if won else 0.0)

    def calibrated(self, raw: float, regime: str) -> float:
        """Posterior mean win rate for ``regime`` with the raw score as the prior mean."""
        n = self._trades.get(regime, 0.0)
        w = self._wins.get(regime, 0.0)
        k = self.prior_weight
        return (raw * k + w) / (k + n)
