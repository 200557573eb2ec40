"""Reconciliation: the broker's view against ours, and the gate that keeps trading shut until
they agree.

:func:`reconcile` is pure: a broker :class:`~sovereign.brokers.models.MassStatus` and our
:class:`InternalState` (orders by client order id, positions by symbol, the fill ids we hold) in;
a :class:`ReconciliationReport` out, with every difference as an :class:`Issue` and what to do
about it:

- a broker order we never placed is **adopted** (recorded) and flagged;
- a broker fill we had not recorded is **recovered** by its client order id (flagged when the
  order is unknown to us);
- an order we think open that the broker no longer lists is looked up by client order id: closed
  at the broker (status updated), or unknown to it (flagged);
- positions are compared after the recovered fills; a difference (a symbol we think flat, or a
  different quantity) is adopted as the broker's truth and flagged.

:class:`Reconciler` runs it against a live broker, applies the adoptions to memory, records the
outcome in ``kv_state`` and the audit log, and gates trading: :meth:`Reconciler.may_trade` is
False (no new orders) before the first reconciliation, after one that failed (broker unreachable),
and while any blocking issue found by any run is unacknowledged. Only a person lifts a blocking
issue (:meth:`Reconciler.acknowledge`): adoption makes the next run clean, and that alone must not
reopen trading behind a person's back. An acknowledged issue does not block again while it
persists unchanged (same kind and key); once gone, its return blocks anew.

:func:`submit_safely` submits an order so that a timeout never doubles it: before any retry, the
order is looked up by its client order id.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import select

from sovereign.app.context import App
from sovereign.brokers.models import Fill, MassStatus, Order, OrderReport, OrderStatus, Side
from sovereign.brokers.port import Broker
from sovereign.errors import BrokerUnavailable, HaltTrading, TransientError
from sovereign.memory import session
from sovereign.memory.tables import OrderRow

log = logging.getLogger(__name__)

POSITION_TOLERANCE = 1e-6  # shares
TIMEOUTS: tuple[type[BaseException], ...] = (TransientError, TimeoutError)


class IssueKind(StrEnum):
    UNKNOWN_ORDER = "unknown_order"  # the broker works an order we never placed: adopted
    ORDER_REOPENED = "order_reopened"  # we think it closed, the broker works it: status adopted
    ORDER_CLOSED = "order_closed"  # we think it open, the broker closed it: status updated
    ORDER_NOT_AT_BROKER = "order_not_at_broker"  # we think it open, the broker never had it
    ORDER_UNCONFIRMED = "order_unconfirmed"  # we think it open, not listed, not looked up
    MISSING_FILL = "missing_fill"  # a fill of our order we had not recorded: recovered
    UNKNOWN_FILL = "unknown_fill"  # a fill of an order we never placed: recorded
    UNKNOWN_POSITION = "unknown_position"  # the broker holds what we think is flat: adopted
    POSITION_MISMATCH = "position_mismatch"  # a different quantity: the broker's adopted


BLOCKING = frozenset(
    {
        IssueKind.UNKNOWN_ORDER,
        IssueKind.ORDER_REOPENED,
        IssueKind.ORDER_NOT_AT_BROKER,
        IssueKind.ORDER_UNCONFIRMED,
        IssueKind.UNKNOWN_FILL,
        IssueKind.UNKNOWN_POSITION,
        IssueKind.POSITION_MISMATCH,
    }
)
"""Kinds that stop new orders until a clean reconciliation or a person's acknowledgement.
A recovered fill and an order the broker closed are routine after a restart: recorded only."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Issue:
    kind: IssueKind
    key: str  # client order id, fill id or symbol
    message: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "key": self.key,
            "message": self.message,
            "blocking": self.blocking,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class InternalOrder:
    client_order_id: str
    symbol: str
    side: Side
    status: str  # an OrderStatus value; anything else counts as open (it gets looked up)
    quantity: float | None = None
    strategy: str = ""

    @property
    def is_open(self) -> bool:
        try:
            return OrderStatus(self.status).is_open
        except ValueError:
            return True


@dataclass(frozen=True, kw_only=True, slots=True)
class InternalState:
    """What we believe: ``orders`` by client order id (open and closed), ``positions`` as signed
    shares by symbol, and the ids of the fills we have recorded."""

    orders: Mapping[str, InternalOrder] = field(default_factory=dict)
    positions: Mapping[str, float] = field(default_factory=dict)
    fill_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderUpdate:
    client_order_id: str
    status: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconciliationReport:
    """``at``: the broker snapshot's time. ``adopt_orders``: broker orders to record.
    ``order_updates``: statuses to correct. ``recover_fills``: fills to record.
    ``position_adjustments``: symbol -> broker quantity minus ours (after the recovered fills)."""

    at: datetime
    issues: tuple[Issue, ...] = ()
    adopt_orders: tuple[OrderReport, ...] = ()
    order_updates: tuple[OrderUpdate, ...] = ()
    recover_fills: tuple[Fill, ...] = ()
    position_adjustments: Mapping[str, float] = field(default_factory=dict)

    @property
    def blocking(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.blocking)

    @property
    def clean(self) -> bool:
        return not self.blocking

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "clean": self.clean,
            "issues": [i.to_json() for i in self.issues],
            "adopted_orders": [r.client_order_id for r in self.adopt_orders],
            "order_updates": [
                {"client_order_id": u.client_order_id, "status": u.status, "reason": u.reason}
                for u in self.order_updates
            ],
            "recovered_fills": [f.fill_id for f in self.recover_fills],
            "position_adjustments": {k: round(v, 6) for k, v in self.position_adjustments.items()},
        }


# ------------------------------------------------------------------------------ pure core


def orders_to_look_up(status: MassStatus, internal: InternalState) -> tuple[str, ...]:
    """Client order ids we think open that the broker does not list as open, sorted."""
    listed = {r.client_order_id for r in status.open_orders}
    return tuple(sorted(c for c, o in internal.orders.items() if o.is_open and c not in listed))


def reconcile(
    broker_status: MassStatus,
    internal: InternalState,
    looked_up: Mapping[str, OrderReport | None] | None = None,
) -> ReconciliationReport:
    """Compare ``broker_status`` with ``internal``; see the module docstring.

    ``looked_up``: the broker's answer to ``get_order`` for each id of
    :func:`orders_to_look_up` (None: the broker does not know it); an id left out is flagged
    as unconfirmed.
    """
    issues: list[Issue] = []
    updates: list[OrderUpdate] = []
    adopt = _open_orders(broker_status, internal, issues, updates)
    _looked_up(broker_status, internal, looked_up or {}, issues, updates)
    recover = _fills(broker_status, internal, issues)
    adjustments = _positions(broker_status, internal, recover, issues)
    return ReconciliationReport(
        at=broker_status.account.timestamp,
        issues=tuple(issues),
        adopt_orders=tuple(adopt),
        order_updates=tuple(updates),
        recover_fills=tuple(recover),
        position_adjustments=adjustments,
    )


def _open_orders(
    status: MassStatus, internal: InternalState, issues: list[Issue], updates: list[OrderUpdate]
) -> list[OrderReport]:
    adopt: list[OrderReport] = []
    for r in status.open_orders:
        mine = internal.orders.get(r.client_order_id)
        if mine is None:
            adopt.append(r)
            issues.append(
                Issue(
                    kind=IssueKind.UNKNOWN_ORDER,
                    key=r.client_order_id,
                    message=f"the broker works {r.side.value} {r.symbol} order "
                    f"{r.client_order_id} ({r.status.value}) that we never placed: adopted",
                )
            )
        elif not mine.is_open:
            issues.append(
                Issue(
                    kind=IssueKind.ORDER_REOPENED,
                    key=r.client_order_id,
                    message=f"order {r.client_order_id} is {mine.status} here but "
                    f"{r.status.value} at the broker",
                )
            )
            updates.append(_update(r, "status adopted from the broker"))
        elif mine.status != r.status.value:
            updates.append(_update(r, "status refreshed from the broker"))
    return adopt


def _looked_up(
    status: MassStatus,
    internal: InternalState,
    looked_up: Mapping[str, OrderReport | None],
    issues: list[Issue],
    updates: list[OrderUpdate],
) -> None:
    for coid in orders_to_look_up(status, internal):
        if coid not in looked_up:
            issues.append(
                Issue(
                    kind=IssueKind.ORDER_UNCONFIRMED,
                    key=coid,
                    message=f"order {coid} is open here, not listed by the broker, and was "
                    "not looked up",
                )
            )
            continue
        found = looked_up[coid]
        if found is None:
            issues.append(
                Issue(
                    kind=IssueKind.ORDER_NOT_AT_BROKER,
                    key=coid,
                    message=f"order {coid} is open here but the broker does not know it",
                )
            )
            updates.append(
                OrderUpdate(
                    client_order_id=coid,
                    status=OrderStatus.REJECTED.value,
                    reason="unknown to the broker at reconciliation",
                )
            )
        elif found.status.is_open:
            updates.append(_update(found, "status refreshed from the broker"))
        else:
            issues.append(
                Issue(
                    kind=IssueKind.ORDER_CLOSED,
                    key=coid,
                    message=f"order {coid} was {found.status.value} at the broker: updated",
                )
            )
            updates.append(_update(found, f"{found.status.value} at the broker"))


def _fills(status: MassStatus, internal: InternalState, issues: list[Issue]) -> list[Fill]:
    recover: list[Fill] = []
    seen = set(internal.fill_ids)
    for f in status.fills:
        if f.fill_id in seen:
            continue
        seen.add(f.fill_id)
        recover.append(f)
        known = f.client_order_id in internal.orders
        issues.append(
            Issue(
                kind=IssueKind.MISSING_FILL if known else IssueKind.UNKNOWN_FILL,
                key=f.fill_id,
                message=f"fill {f.fill_id}: {f.side.value} {f.quantity:g} {f.symbol} @ "
                f"{f.price:g} of {'our' if known else 'an unknown'} order "
                f"{f.client_order_id}: recorded",
            )
        )
    return recover


def _positions(
    status: MassStatus, internal: InternalState, recovered: Iterable[Fill], issues: list[Issue]
) -> dict[str, float]:
    expected = dict(internal.positions)
    for f in recovered:
        expected[f.symbol] = expected.get(f.symbol, 0.0) + f.signed_quantity
    broker = {p.symbol: p.quantity for p in status.positions}
    adjustments: dict[str, float] = {}
    for symbol in sorted(set(expected) | set(broker)):
        ours, theirs = expected.get(symbol, 0.0), broker.get(symbol, 0.0)
        diff = theirs - ours
        if abs(diff) <= POSITION_TOLERANCE:
            continue
        adjustments[symbol] = diff
        unknown = abs(ours) <= POSITION_TOLERANCE
        issues.append(
            Issue(
                kind=IssueKind.UNKNOWN_POSITION if unknown else IssueKind.POSITION_MISMATCH,
                key=symbol,
                message=f"{symbol}: the broker holds {theirs:g} shares, we expected {ours:g}: "
                "the broker's quantity adopted",
            )
        )
    return adjustments


def _update(r: OrderReport, reason: str) -> OrderUpdate:
    return OrderUpdate(client_order_id=r.client_order_id, status=r.status.value, reason=reason)


# ---------------------------------------------------------------------------- submitting


def submit_safely(
    broker: Broker,
    order: Order,
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
) -> OrderReport:
    """Submit ``order`` without ever doubling it.

    After a submit that timed out (:class:`~sovereign.errors.TransientError` or
    ``TimeoutError``) the order is looked up by its client order id: found, its report is
    returned; not found, it is submitted again; a lookup that itself times out is retried, never
    followed by a blind resubmit. ``backoff``: seconds, times the attempt number. Raises
    :class:`~sovereign.errors.BrokerUnavailable` when the order could not be placed or
    confirmed in ``attempts`` tries.
    """
    coid = order.client_order_id
    last: BaseException | None = None
    tried = False
    for attempt in range(1, attempts + 1):
        if tried:
            try:
                found = broker.get_order(coid)
            except TIMEOUTS as err:
                last = err
                log.warning("looking up order %s timed out (%s); not resubmitting", coid, err)
                sleep(backoff * attempt)
                continue
            if found is not None:
                log.info("order %s reached the broker despite the timeout", coid)
                return found
        try:
            tried = True
            return broker.submit(order)
        except TIMEOUTS as err:
            last = err
            log.warning("submitting order %s timed out (%s)", coid, err)
            sleep(backoff * attempt)
    if tried:
        try:
            found = broker.get_order(coid)
        except TIMEOUTS as err:
            last = err
            found = None
        if found is not None:
            return found
    raise BrokerUnavailable(
        f"order {coid} could not be placed or confirmed in {attempts} attempts; it was never "
        "submitted twice. Reconcile before trading again."
    ) from last


# ---------------------------------------------------------------------------- reconciler


def acknowledge(app: App, key: str, *, by: str, now: datetime, run_id: str | None = None) -> None:
    """A person accepts the blocking issues of the reconciliation kept under ``key``; trading
    may resume. Raises ``ValueError`` without a name, and :class:`HaltTrading` when the last
    reconciliation failed or none ran (nothing to acknowledge: reconcile first)."""
    if not by.strip():
        raise ValueError("acknowledging reconciliation issues needs the person's name")
    st = app.supervisor_store.load_state(key) or {}
    if not st.get("ok"):
        raise HaltTrading("the last reconciliation did not complete: run it before acknowledging")
    blocking = st.get("blocking", [])
    accepted = {tuple(k) for k in st.get("accepted", [])}
    accepted |= {(i["kind"], i["key"]) for i in blocking}
    app.supervisor_store.save_state(
        key,
        {
            **st,
            "blocking": [],
            "accepted": sorted([list(k) for k in accepted]),
            "acknowledged_by": by,
            "acknowledged_at": now.isoformat(),
        },
        now,
    )
    app.audit.append(
        "reconcile.acknowledged",
        {"key": key, "run_id": run_id, "by": by, "issues": [i["key"] for i in blocking]},
        now,
    )


class Reconciler:
    """Reconciles ``broker`` with what ``app``'s memory holds for ``run_id`` and gates trading.

    ``run_id``: the run whose orders and fills are ours, and under which adopted orders and
    recovered fills are recorded (recorded as a run if it is not yet). ``run_ids``: more runs
    that are ours too (a live account across restarts); default just ``run_id``. Our positions
    are the net of our fills plus the adjustments adopted from the broker so far (kept in
    ``kv_state`` under :attr:`key` with the gate's state).
    """

    def __init__(
        self,
        app: App,
        broker: Broker,
        *,
        run_id: str,
        run_ids: Sequence[str] = (),
        key: str | None = None,
    ) -> None:
        self.app = app
        self.broker = broker
        self.run_id = run_id
        self.run_ids = tuple(dict.fromkeys((run_id, *run_ids)))
        # Keyed by account (``key``) the gate state, adopted adjustments and acknowledgements
        # survive a restart; the default keys them by run.
        self.key = key or f"reconciliation:{run_id}"

    # ---- state ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The persisted gate state (empty before the first reconciliation)."""
        return self.app.supervisor_store.load_state(self.key) or {}

    def may_trade(self) -> bool:
        """True only after a reconciliation that found no unacknowledged blocking issue; False
        before any, after a failed one, and whenever the state cannot be read (fail closed)."""
        try:
            st = self.state()
        except Exception:
            log.exception("reconciliation state unreadable: no new orders")
            return False
        return bool(st.get("ok")) and not st.get("blocking")

    def internal_state(self) -> InternalState:
        """Our orders, fills and positions as recorded in memory for :attr:`run_ids`."""
        orders: dict[str, InternalOrder] = {}
        fill_ids: set[str] = set()
        positions: dict[str, float] = {
            k: float(v) for k, v in self.state().get("adjustments", {}).items()
        }
        for run in self.run_ids:
            for o in self.app.memory.orders(run_id=run):
                orders[o.client_order_id] = InternalOrder(
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=Side(o.side),
                    status=o.status,
                    quantity=o.quantity,
                    strategy=o.strategy,
                )
            for f in self.app.memory.fills(run_id=run):
                fill_ids.add(f.fill_id)
                positions[f.symbol] = positions.get(f.symbol, 0.0) + f.quantity * Side(f.side).sign
        return InternalState(orders=orders, positions=positions, fill_ids=frozenset(fill_ids))

    # ---- running ----------------------------------------------------------------------

    def run(self, now: datetime, internal: InternalState | None = None) -> ReconciliationReport:
        """Reconcile now: read the broker, compare, adopt, record, and return the report.

        ``internal``: our state (default: :meth:`internal_state`). A broker that fails to answer
        is recorded (trading stays shut) and raises :class:`BrokerUnavailable`.
        """
        mine = internal if internal is not None else self.internal_state()
        previous = self.state()
        try:
            status = self.broker.mass_status()
            looked_up = {c: self.broker.get_order(c) for c in orders_to_look_up(status, mine)}
        except Exception as err:
            self._save({**previous, "ok": False, "at": now.isoformat(), "error": repr(err)}, now)
            self.app.audit.append(
                "reconcile.failed", {"run_id": self.run_id, "error": repr(err)}, now
            )
            raise BrokerUnavailable(
                f"reconciliation with {self.broker.name} failed: {err}"
            ) from err
        report = reconcile(status, mine, looked_up)
        self._apply(report, now)
        accepted = {tuple(k) for k in previous.get("accepted", [])}
        current = {(i.kind.value, i.key) for i in report.blocking}
        accepted &= current  # an acknowledged issue that went away must be acknowledged anew
        # Blocking issues stay until a person acknowledges them, even when a later run is clean
        # (adoption makes it clean: that must not reopen trading behind a person's back).
        pending = {(b["kind"], b["key"]): b for b in previous.get("blocking", [])}
        for issue in report.blocking:
            if (issue.kind.value, issue.key) not in accepted:
                pending[(issue.kind.value, issue.key)] = issue.to_json()
        blocking = list(pending.values())
        adjustments = dict(previous.get("adjustments", {}))
        for symbol, diff in report.position_adjustments.items():
            adjustments[symbol] = adjustments.get(symbol, 0.0) + diff
        self._save(
            {
                "ok": True,
                "at": now.isoformat(),
                "broker_at": report.at.isoformat(),
                "issues": [i.to_json() for i in report.issues],
                "blocking": blocking,
                "accepted": sorted([list(k) for k in accepted]),
                "acknowledged_by": previous.get("acknowledged_by"),
                "adjustments": {k: v for k, v in adjustments.items() if math.isfinite(v)},
            },
            now,
        )
        kind = "reconcile.clean" if not blocking else "reconcile.mismatch"
        self.app.audit.append(kind, {"run_id": self.run_id, **report.to_json()}, now)
        if blocking:
            log.warning(
                "reconciliation found %d blocking issue(s): no new orders until a person "
                "acknowledges: %s",
                len(blocking),
                "; ".join(i["message"] for i in blocking),
            )
        return report

    def acknowledge(self, by: str, now: datetime) -> None:
        """A person accepts the current blocking issues (see :func:`acknowledge`)."""
        acknowledge(self.app, self.key, by=by, now=now, run_id=self.run_id)

    def submit(self, order: Order, **kwargs: Any) -> OrderReport:
        """:func:`submit_safely` behind the gate: a new order (not ``reduce_only``) is refused
        with :class:`HaltTrading` while :meth:`may_trade` is False."""
        if not order.reduce_only and not self.may_trade():
            raise HaltTrading(
                f"order {order.client_order_id} refused: the broker is not reconciled "
                "(run reconciliation, or a person acknowledges its issues)"
            )
        return submit_safely(self.broker, order, **kwargs)

    # ---- writing ----------------------------------------------------------------------

    def _save(self, value: dict[str, Any], now: datetime) -> None:
        self.app.supervisor_store.save_state(self.key, value, now)

    def _apply(self, report: ReconciliationReport, now: datetime) -> None:
        memory = self.app.memory
        if memory.run(self.run_id) is None:
            memory.record_run_start(self.run_id, started_at=now, mode="reconciliation")
        if report.adopt_orders:
            memory.add_orders([self._adopted_row(r) for r in report.adopt_orders])
        if report.order_updates:
            with session(self.app.engine) as db:
                for u in report.order_updates:
                    row = db.exec(
                        select(OrderRow).where(OrderRow.client_order_id == u.client_order_id)
                    ).first()
                    if row is not None:
                        row.status = u.status
                        row.reason = u.reason
                        db.add(row)
        if report.recover_fills:
            memory.add_fills([self._fill_row(f) for f in report.recover_fills])

    def _adopted_row(self, r: OrderReport) -> dict[str, Any]:
        return {
            "client_order_id": r.client_order_id,
            "run_id": self.run_id,
            "strategy": r.strategy or "adopted",
            "symbol": r.symbol,
            "side": r.side.value,
            "quantity": r.quantity,
            "status": r.status.value,
            "submitted_at": r.timestamp,
            "reason": "adopted from the broker by reconciliation",
        }

    def _fill_row(self, f: Fill) -> dict[str, Any]:
        return {
            "fill_id": f.fill_id,
            "client_order_id": f.client_order_id,
            "symbol": f.symbol,
            "side": f.side.value,
            "quantity": f.quantity,
            "price": f.price,
            "commission": f.commission,
            "slippage_cost": f.slippage_cost,
            "timestamp": f.timestamp,
            "strategy": f.strategy,
            "run_id": self.run_id,
        }


__all__ = [
    "BLOCKING",
    "InternalOrder",
    "InternalState",
    "Issue",
    "IssueKind",
    "OrderUpdate",
    "Reconciler",
    "ReconciliationReport",
    "orders_to_look_up",
    "reconcile",
    "submit_safely",
]
