"""The Supervisor: the risk authority that enforces the constitution at trade time.

States: NORMAL (trading), REDUCING (no new positions for the rest of the day after a daily loss
beyond ``max_daily_loss``), HALTED (drawdown beyond ``max_drawdown``, or a person's halt: every
position is flattened and nothing new is opened until a person resumes). A strategy whose own
pool loses more than its ``pool_max_loss`` is killed alone while the others trade on.

The Supervisor holds no clock and does no I/O: it is handed ``now`` and the equity, returns the
transitions it made, and can be saved to and restored from a plain dict so that HALTED survives a
restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sovereign.constitution import Constitution
from sovereign.trading.events import Transition
from sovereign.trading.overlay import NEUTRAL, ExposureLimits


class SupervisorState(StrEnum):
    NORMAL = "NORMAL"
    REDUCING = "REDUCING"  # no new positions: a day loss, or a drawdown near the hard stop
    HALTED = "HALTED"


class StrategyState(StrEnum):
    ACTIVE = "ACTIVE"
    KILLED = "KILLED"


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryCheck:
    """The Supervisor's answer about one candidate entry."""

    approved: bool
    reason: str
    max_fraction: float = 0.0  # largest position allowed, as a fraction of equity


@dataclass(kw_only=True, slots=True)
class _Pool:
    capital: float
    max_loss: float
    peak: float
    state: StrategyState = StrategyState.ACTIVE


@dataclass(kw_only=True)
class Supervisor:
    constitution: Constitution
    state: SupervisorState = SupervisorState.NORMAL
    reason: str = ""
    peak_equity: float = 0.0
    day: date | None = None
    day_start_equity: float = 0.0
    orders_today: int = 0
    pools: dict[str, _Pool] = field(default_factory=dict)
    blocked_until: dict[str, datetime] = field(default_factory=dict)
    # Soft limit: at soft_drawdown x max_drawdown no new positions (REDUCING) until the drawdown
    # is back under recover_drawdown x max_drawdown. Stricter than the constitution, never looser.
    soft_drawdown: float = 0.6
    recover_drawdown: float = 0.4
    reducing_scale: float = 0.5  # new positions are at most this share of the usual cap
    # The engines' limits for the current bar (stability, crash sentinel, stress room); set by
    # the Trader every bar, never persisted: they are recomputed from the data.
    limits: ExposureLimits = field(default=NEUTRAL)

    # ---- configuration -------------------------------------------------------------------

    def add_pool(self, strategy: str, *, capital: float, max_loss: float) -> None:
        if strategy not in self.pools:
            self.pools[strategy] = _Pool(capital=capital, max_loss=max_loss, peak=capital)

    # ---- observation -----------------------------------------------------------------------

    def observe(self, now: datetime, equity: float) -> list[Transition]:
        """Update day, peak and drawdown from the account's ``equity`` at ``now``."""
        out: list[Transition] = []
        if not math.isfinite(equity) or equity <= 0:
            if self.state is not SupervisorState.HALTED:
                out.append(self._move(now, SupervisorState.HALTED, f"equity not usable: {equity}"))
            return out
        today = now.date()
        if self.day != today:
            self.day = today
            self.day_start_equity = equity
            self.orders_today = 0
            if self.state is SupervisorState.REDUCING and not self.reason.startswith("drawdown"):
                out.append(self._move(now, SupervisorState.NORMAL, "new trading day"))
        self.peak_equity = max(self.peak_equity, equity)
        if self.state is SupervisorState.HALTED:
            return out
        drawdown = self.drawdown(equity)
        if drawdown >= self.constitution.max_drawdown:
            out.append(
                self._move(
                    now,
                    SupervisorState.HALTED,
                    f"drawdown {drawdown:.2%} reached the {self.constitution.max_drawdown:.0%} "
                    "limit: flatten everything; a person must resume",
                )
            )
        elif self.state is SupervisorState.NORMAL and drawdown >= self.soft_drawdown * (
            self.constitution.max_drawdown
        ):
            out.append(
                self._move(
                    now,
                    SupervisorState.REDUCING,
                    f"drawdown {drawdown:.2%} is within reach of the "
                    f"{self.constitution.max_drawdown:.0%} hard stop: losers cut, new positions "
                    f"at {self.reducing_scale:.0%} size until it recovers below {self.recover_drawdown * self.constitution.max_drawdown:.1%}",
                )
            )
        elif (
            self.state is SupervisorState.REDUCING
            and self.reason.startswith("drawdown")
            and drawdown < self.recover_drawdown * self.constitution.max_drawdown
            and self.day_loss(equity) < self.constitution.max_daily_loss
        ):
            out.append(
                self._move(now, SupervisorState.NORMAL, f"drawdown recovered to {drawdown:.2%}")
            )
        elif self.state is SupervisorState.NORMAL and self.day_loss(equity) >= (
            self.constitution.max_daily_loss
        ):
            out.append(
                self._move(
                    now,
                    SupervisorState.REDUCING,
                    f"day loss {self.day_loss(equity):.2%} reached the "
                    f"{self.constitution.max_daily_loss:.0%} limit: no new positions today",
                )
            )
        return out

    def kill_pool(self, now: datetime, strategy: str, reason: str) -> Transition | None:
        """Kill ``strategy``'s pool for ``reason`` (the allocator found its edge decayed);
        None when it is already killed."""
        pool = self.pools[strategy]
        if pool.state is StrategyState.KILLED:
            return None
        pool.state = StrategyState.KILLED
        return Transition(
            timestamp=now,
            scope=f"strategy:{strategy}",
            from_state=StrategyState.ACTIVE.value,
            to_state=StrategyState.KILLED.value,
            reason=reason,
        )

    def observe_pool(self, now: datetime, strategy: str, pool_equity: float) -> Transition | None:
        """Kill ``strategy`` alone when its pool lost more than its own limit from its peak."""
        pool = self.pools[strategy]
        if pool.state is StrategyState.KILLED:
            return None
        pool.peak = max(pool.peak, pool_equity)
        loss = 1.0 - pool_equity / pool.peak if pool.peak > 0 else 1.0
        if not math.isfinite(loss) or loss >= pool.max_loss:
            pool.state = StrategyState.KILLED
            return Transition(
                timestamp=now,
                scope=f"strategy:{strategy}",
                from_state=StrategyState.ACTIVE.value,
                to_state=StrategyState.KILLED.value,
                reason=f"pool loss {loss:.2%} beyond its {pool.max_loss:.0%} limit",
            )
        return None

    def drawdown(self, equity: float) -> float:
        return 0.0 if self.peak_equity <= 0 else max(0.0, 1.0 - equity / self.peak_equity)

    def day_loss(self, equity: float) -> float:
        if self.day_start_equity <= 0:
            return 0.0
        return max(0.0, 1.0 - equity / self.day_start_equity)

    # ---- decisions -------------------------------------------------------------------------

    @property
    def cutting_losses(self) -> bool:
        """True while a drawdown near the hard stop asks the Trader to close losing positions."""
        return self.state is SupervisorState.REDUCING and self.reason.startswith("drawdown")

    @property
    def allows_new_risk(self) -> bool:
        return self.state is SupervisorState.NORMAL

    def set_limits(self, limits: ExposureLimits) -> None:
        """Adopt the engines' limits for this bar (see :mod:`sovereign.trading.overlay`)."""
        self.limits = limits

    def record_entry(self, side: int, fraction: float) -> None:
        """A new position of ``fraction`` of equity was ordered: it uses stress room."""
        self.limits = self.limits.consume(side, fraction)

    def stand_down(self, reason: str) -> None:
        """No new risk for this bar: an engine output could not be trusted (fail closed)."""
        self.limits = ExposureLimits(stand_down=True, reasons=(reason,))

    def strategy_active(self, strategy: str) -> bool:
        pool = self.pools.get(strategy)
        return pool is None or pool.state is StrategyState.ACTIVE

    def check_entry(
        self,
        *,
        now: datetime,
        strategy: str,
        symbol: str,
        confidence: float,
        gross_exposure: float,
        side: int = 1,
    ) -> EntryCheck:
        """May ``strategy`` open a position in ``symbol`` now? ``gross_exposure`` is the
        account's current sum of |position value| / equity; ``side`` +1 long, -1 short (the
        engines' stress room differs by side)."""
        c = self.constitution
        scale = 1.0
        if self.cutting_losses:
            scale = self.reducing_scale  # near the hard stop: smaller new positions, so it can heal
        elif self.state is not SupervisorState.NORMAL:
            return EntryCheck(
                approved=False, reason=f"supervisor {self.state.value}: {self.reason}"
            )
        if self.limits.stand_down:
            return EntryCheck(approved=False, reason=f"engines: {self.limits.reason}")
        if not self.strategy_active(strategy):
            return EntryCheck(approved=False, reason=f"strategy {strategy} is killed")
        until = self.blocked_until.get(symbol)
        if until is not None and now < until:
            return EntryCheck(approved=False, reason=f"{symbol} blocked until {until:%Y-%m-%d}")
        if not (math.isfinite(confidence) and confidence >= c.min_confidence_for_trade):
            return EntryCheck(
                approved=False,
                reason=f"confidence {confidence:.2f} below {c.min_confidence_for_trade:.2f}",
            )
        if self.orders_today >= c.max_orders_per_day:
            return EntryCheck(
                approved=False, reason=f"orders per day cap {c.max_orders_per_day} reached"
            )
        room = c.max_gross_exposure - gross_exposure
        if room <= 1e-9:
            return EntryCheck(
                approved=False, reason=f"gross exposure at the {c.max_gross_exposure:.0%} cap"
            )
        stress_room = self.limits.room(side)
        if stress_room <= 1e-9:
            return EntryCheck(approved=False, reason=f"stress limit: {self.limits.reason}")
        reasons = [] if scale == 1.0 else [f"reduced size ({self.reason})"]
        if self.limits.scale < 1.0:
            reasons.append(self.limits.reason)
        return EntryCheck(
            approved=True,
            reason="; ".join(reasons) or "within limits",
            max_fraction=min(c.max_position_size * scale * self.limits.scale, room, stress_room),
        )

    def count_order(self) -> None:
        self.orders_today += 1

    def block(self, symbol: str, until: datetime) -> None:
        self.blocked_until[symbol] = max(until, self.blocked_until.get(symbol, until))

    # ---- people ------------------------------------------------------------------------------

    def halt(self, now: datetime, reason: str) -> Transition | None:
        if self.state is SupervisorState.HALTED:
            return None
        return self._move(now, SupervisorState.HALTED, reason)

    def resume(self, now: datetime, by: str, *, equity: float | None = None) -> Transition | None:
        """Lift a halt; only a person calls this. The drawdown peak restarts at ``equity``."""
        if self.state is SupervisorState.NORMAL:
            return None
        if equity is not None and equity > 0:
            self.peak_equity = equity
            self.day_start_equity = equity
        return self._move(now, SupervisorState.NORMAL, f"resumed by {by}")

    # ---- persistence ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "peak_equity": self.peak_equity,
            "day": None if self.day is None else self.day.isoformat(),
            "day_start_equity": self.day_start_equity,
            "orders_today": self.orders_today,
            "pools": {
                k: {
                    "capital": p.capital,
                    "max_loss": p.max_loss,
                    "peak": p.peak,
                    "state": p.state.value,
                }
                for k, p in self.pools.items()
            },
            "blocked_until": {k: v.isoformat() for k, v in self.blocked_until.items()},
        }

    @classmethod
    def restore(cls, constitution: Constitution, data: dict[str, Any]) -> Supervisor:
        sup = cls(
            constitution=constitution,
            state=SupervisorState(data["state"]),
            reason=data.get("reason", ""),
            peak_equity=float(data.get("peak_equity", 0.0)),
            day=date.fromisoformat(data["day"]) if data.get("day") else None,
            day_start_equity=float(data.get("day_start_equity", 0.0)),
            orders_today=int(data.get("orders_today", 0)),
        )
        for k, p in data.get("pools", {}).items():
            sup.pools[k] = _Pool(
                capital=p["capital"],
                max_loss=p["max_loss"],
                peak=p["peak"],
                state=StrategyState(p["state"]),
            )
        sup.blocked_until = {
            k: datetime.fromisoformat(v) for k, v in data.get("blocked_until", {}).items()
        }
        return sup

    def _move(self, now: datetime, to: SupervisorState, reason: str) -> Transition:
        t = Transition(
            timestamp=now,
            scope="global",
            from_state=self.state.value,
            to_state=to.value,
            reason=reason,
        )
        self.state, self.reason = to, reason
        return t
