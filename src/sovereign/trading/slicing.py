"""Order slicing: the Trader's large entries worked over several daily bars.

An entry order whose size is more than ``participation_threshold`` of the symbol's average daily
volume (ADV) is split by :func:`sovereign.engines.execution.plan_order` into children, one per
bar. :class:`WorkingOrders` holds those parents: :meth:`WorkingOrders.start` turns the Trader's
order into its first child and keeps the rest; :meth:`WorkingOrders.due` hands out the next child
of each parent, one per parent per bar; :meth:`WorkingOrders.cancel` drops what is left when the
Supervisor stops new risk or the position is exited. Every child is an entry of the same
(strategy, symbol), so :meth:`sovereign.trading.book.Book.apply_fill` averages their fills into
one open trade.

Children's client order ids are ``client_order_id(..., leg="entry-k")`` for k = 1..n over the
children actually sent (a schedule's zero-share slices are skipped), all with the parent's signal
time, so they are distinct and the same inputs always give the same ids. Quantities are whole
shares, positive (the side is the order's). Pure: no clock, no I/O; the iceberg's randomisation
takes its seed as a parameter (:func:`order_seed` derives one from the client order id).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign.brokers.models import Order, OrderType, Side, TimeInForce, client_order_id
from sovereign.engines.almgren_chriss import ACParams
from sovereign.engines.execution import ExecAlgo, PlanOptions, plan_order
from sovereign.errors import ConfigError, EngineError
from sovereign.trading.book import Intent

__all__ = [
    "MIN_ADV_OBSERVATIONS",
    "Cancellation",
    "SlicingConfig",
    "WorkingOrders",
    "WorkingParent",
    "average_daily_volume",
    "order_seed",
]

MIN_ADV_OBSERVATIONS = 5  # fewer finite volumes than this: no ADV (None), orders go unsliced
_SNAPSHOT_VERSION = 1

Key = tuple[str, str]  # (strategy, symbol)


@dataclass(frozen=True, kw_only=True, slots=True)
class SlicingConfig:
    """When and how the Trader slices an entry (checked on construction: :class:`ConfigError`).

    ``participation_threshold`` in (0, 1]: an order of at most this fraction of the ADV goes at
    once. ``algo``: the schedule for larger ones (TWAP by default: on daily bars the volume
    profile is flat, so TWAP is VWAP). ``max_slices`` >= 2: most bars a parent is worked over.
    ``adv_window`` >= :data:`MIN_ADV_OBSERVATIONS`: bars in the ADV average. ``pov_rate`` in
    (0, 1] and ``iceberg_variation`` in [0, 1): those algorithms' settings (see
    :class:`sovereign.engines.execution.PlanOptions`). ``ac``: Almgren–Chriss coefficients,
    required when ``algo`` is ``ALMGREN_CHRISS``.
    """

    participation_threshold: float = 0.01
    algo: ExecAlgo = ExecAlgo.TWAP
    max_slices: int = 10
    adv_window: int = 20
    pov_rate: float = 0.10
    iceberg_variation: float = 0.20
    ac: ACParams | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.participation_threshold <= 1.0:
            raise ConfigError(
                "SlicingConfig.participation_threshold must be in (0, 1], "
                f"got {self.participation_threshold}"
            )
        if not isinstance(self.algo, ExecAlgo):
            raise ConfigError(f"SlicingConfig.algo must be an ExecAlgo, got {self.algo!r}")
        if self.max_slices < 2:
            raise ConfigError(f"SlicingConfig.max_slices must be >= 2, got {self.max_slices}")
        if self.adv_window < MIN_ADV_OBSERVATIONS:
            raise ConfigError(
                f"SlicingConfig.adv_window must be >= {MIN_ADV_OBSERVATIONS}, got {self.adv_window}"
            )
        if not 0.0 < self.pov_rate <= 1.0 or not 0.0 <= self.iceberg_variation < 1.0:
            raise ConfigError(
                "SlicingConfig: pov_rate must be in (0, 1] and iceberg_variation in [0, 1)"
            )
        if self.algo is ExecAlgo.ALMGREN_CHRISS and self.ac is None:
            raise ConfigError("SlicingConfig.algo ALMGREN_CHRISS needs ac (ACParams)")

    def plan_options(self) -> PlanOptions:
        """These settings as the execution engine's :class:`PlanOptions`."""
        return PlanOptions(
            max_slices=self.max_slices,
            pov_rate=self.pov_rate,
            iceberg_variation=self.iceberg_variation,
            ac=self.ac,
        )


def average_daily_volume(volume: npt.ArrayLike, i: int, j: int, window: int = 20) -> float | None:
    """Mean of the last ``window`` finite volumes of symbol ``j`` up to and including bar ``i``.

    ``volume``: float ndarray of shape (n_bars, n_symbols), shares per bar; NaN where unknown (a
    closes-only panel is all NaN). A gap of NaN bars is stepped over, so the mean always has
    ``window`` values when the history holds them. Returns shares per bar, or None when fewer
    than :data:`MIN_ADV_OBSERVATIONS` finite volumes exist or their mean is not positive (no
    usable ADV: the Trader then sends its order unsliced). Bad indices raise :class:`EngineError`.
    """
    vol = np.asarray(volume, dtype=np.float64)
    src = "slicing.average_daily_volume"
    if vol.ndim != 2:
        raise EngineError(f"volume must be (n_bars, n_symbols), got {vol.shape}", source=src)
    if not (0 <= i < vol.shape[0] and 0 <= j < vol.shape[1]) or window < 1:
        raise EngineError(f"bar {i} / symbol {j} / window {window} out of range", source=src)
    recent = vol[max(0, i + 1 - 2 * window) : i + 1, j]
    finite = recent[np.isfinite(recent)]
    if finite.size < window and i + 1 > recent.size:  # a long gap: look further back
        column = vol[: i + 1, j]
        finite = column[np.isfinite(column)]
    if finite.size < MIN_ADV_OBSERVATIONS:
        return None
    adv = float(finite[-window:].mean())
    return adv if adv > 0.0 else None


def order_seed(coid: str) -> int:
    """A seed for the iceberg's randomisation derived from a client order id (in [0, 2**63))."""
    return int.from_bytes(hashlib.sha256(coid.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Cancellation:
    """Children dropped by :meth:`WorkingOrders.cancel`: their ids, total shares and why."""

    strategy: str
    symbol: str
    coids: tuple[str, ...]
    shares: int
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkingParent:
    """A parent being worked, as seen from outside.

    ``quantity``: the parent's shares. ``coids``, ``quantities``, ``bars``: every child in
    submission order (leg ``entry-k`` is index k - 1): its client order id, shares and the bar
    it is due at (``bars[0]`` is the start bar). ``sent``: children already handed out (the
    first by :meth:`WorkingOrders.start`). ``remainder``: shares the schedule could not place
    in its horizon (POV only, else 0): never sent, reported here so the Trader can record them.
    """

    strategy: str
    symbol: str
    side: Side
    algo: ExecAlgo
    quantity: int
    coids: tuple[str, ...]
    quantities: tuple[int, ...]
    bars: tuple[int, ...]
    sent: int
    remainder: int

    @property
    def remaining(self) -> int:
        """Shares in the children not handed out yet."""
        return sum(self.quantities[self.sent :])


@dataclass(kw_only=True, slots=True)
class _Parent:
    template: Order  # the Trader's order: every child copies it but for id and quantity
    intent: Intent
    view: WorkingParent
    last_bar: int | None  # bar of the last child handed out (None after a re-based restore)


@dataclass(kw_only=True, slots=True)
class WorkingOrders:
    """The Trader's parents being worked over several bars, keyed by (strategy, symbol).

    Not thread-safe; one instance per Trader. Cancellations are kept until
    :meth:`drain_cancellations` so the Trader can record them.
    """

    config: SlicingConfig = field(default_factory=SlicingConfig)
    _parents: dict[Key, _Parent] = field(default_factory=dict)
    _cancelled: list[Cancellation] = field(default_factory=list)

    def start(
        self,
        order: Order,
        *,
        intent: Intent,
        bar: int,
        adv: float | None,
        seed: int,
        ruleset_version: str,
        namespace: str,
        signal_time: datetime,
    ) -> Order | None:
        """The order to send now for the entry ``order`` decided at the close of ``bar``.

        Returns ``order`` itself (nothing kept) when it needs no slicing: it is sized as an
        ``equity_fraction``, in fractional shares or ``reduce_only`` (exits leave at once),
        ``adv`` (shares per bar) is None or not positive, or the plan has one child. Otherwise
        returns the first child (the order with ``quantity`` = child 1 and the ``entry-1`` id)
        and keeps the others; :meth:`parent` then gives every child's id and the schedule's
        ``remainder``. Returns None only when the schedule cannot place a single share (POV on
        an ADV under ``1 / pov_rate`` shares): do not trade. The caller registers ``intent``
        under the returned order's id, and under each child's id as :meth:`due` hands it out.

        ``seed``: the iceberg's randomisation (:func:`order_seed`). ``ruleset_version``,
        ``namespace``, ``signal_time``: as for the Trader's own ids (``signal_time`` is the
        bar's timestamp). Starting a (strategy, symbol) that is still being worked, or an
        ``intent`` for another strategy or symbol or not an entry, raises ``ValueError``.
        """
        if intent.strategy != order.strategy or intent.symbol != order.symbol:
            raise ValueError(f"intent {intent.strategy}/{intent.symbol} is not for this order")
        if intent.kind != "entry":
            raise ValueError(f"only entries are sliced, got a {intent.kind!r} intent")
        key = (order.strategy, order.symbol)
        if key in self._parents and self._parents[key].view.remaining > 0:
            raise ValueError(f"{key} is still being worked; cancel it first")
        if (
            order.quantity is None
            or order.reduce_only
            or not float(order.quantity).is_integer()
            or adv is None
            or not (math.isfinite(adv) and adv > 0.0)
        ):
            return order
        cfg = self.config
        schedule = plan_order(
            int(order.quantity),
            adv,
            participation_threshold=cfg.participation_threshold,
            algo=cfg.algo,
            seed=seed,
            options=cfg.plan_options(),
        )
        slots = [(k, int(q)) for k, q in enumerate(schedule.child_quantities.tolist()) if q != 0]
        if not slots:
            return None
        if len(slots) == 1 and schedule.remainder == 0:
            return order
        first = slots[0][0]
        coids = tuple(
            client_order_id(
                strategy=order.strategy,
                ruleset_version=ruleset_version,
                symbol=order.symbol,
                signal_time=signal_time,
                leg=f"entry-{n}",
                namespace=namespace,
            )
            for n in range(1, len(slots) + 1)
        )
        view = WorkingParent(
            strategy=order.strategy,
            symbol=order.symbol,
            side=order.side,
            algo=schedule.algo,
            quantity=schedule.quantity,
            coids=coids,
            quantities=tuple(q for _, q in slots),
            bars=tuple(bar + k - first for k, _ in slots),
            sent=1,
            remainder=schedule.remainder,
        )
        self._parents[key] = _Parent(template=order, intent=intent, view=view, last_bar=bar)
        return replace(order, client_order_id=coids[0], quantity=float(view.quantities[0]))

    def due(self, bar: int, *, created_at: datetime | None = None) -> list[tuple[Order, Intent]]:
        """The children to send at the close of ``bar``, with the intent to register for each.

        At most one child per parent per bar, in the order the parents were started. A child
        whose bar was missed (the Trader stood down) goes at the next call, so a schedule is
        delayed, never doubled up. ``created_at`` stamps the children (default: the parent's
        ``created_at``). Parents with nothing left are forgotten.
        """
        out: list[tuple[Order, Intent]] = []
        for key, p in list(self._parents.items()):
            v = p.view
            turn = v.sent < len(v.quantities) and v.bars[v.sent] <= bar
            if turn and (p.last_bar is None or bar > p.last_bar):
                child = replace(
                    p.template,
                    client_order_id=v.coids[v.sent],
                    quantity=float(v.quantities[v.sent]),
                    created_at=created_at or p.template.created_at,
                )
                out.append((child, p.intent))
                p.view = replace(v, sent=v.sent + 1)
                p.last_bar = bar
            if p.view.sent >= len(p.view.quantities):
                del self._parents[key]
        return out

    def cancel(self, strategy: str, symbol: str, reason: str) -> int:
        """Drop the children of (strategy, symbol) not handed out yet; returns how many.

        Children already sent are the broker's business (cancel them there if needed)."""
        p = self._parents.pop((strategy, symbol), None)
        if p is None:
            return 0
        v = p.view
        left = len(v.quantities) - v.sent
        if left > 0:
            self._cancelled.append(
                Cancellation(
                    strategy=strategy,
                    symbol=symbol,
                    coids=v.coids[v.sent :],
                    shares=v.remaining,
                    reason=reason,
                )
            )
        return left

    def cancel_all(self, reason: str) -> int:
        """:meth:`cancel` every parent (the Supervisor stopped new risk); returns the count."""
        return sum(self.cancel(s, sym, reason) for s, sym in list(self._parents))

    def drain_cancellations(self) -> list[Cancellation]:
        """The cancellations since the last call, oldest first; the list is then emptied."""
        out, self._cancelled = self._cancelled, []
        return out

    def pending(self) -> dict[Key, int]:
        """Shares not handed out yet per (strategy, symbol) still being worked."""
        return {k: p.view.remaining for k, p in self._parents.items() if p.view.remaining > 0}

    def is_working(self, strategy: str, symbol: str) -> bool:
        """True while (strategy, symbol) has children not handed out yet."""
        p = self._parents.get((strategy, symbol))
        return p is not None and p.view.remaining > 0

    def parent(self, strategy: str, symbol: str) -> WorkingParent | None:
        """The parent of (strategy, symbol) until :meth:`due` forgets it, else None."""
        p = self._parents.get((strategy, symbol))
        return None if p is None else p.view

    # ---- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The parents as plain JSON (for the live loop's saved book); see :meth:`restore`."""
        return {
            "version": _SNAPSHOT_VERSION,
            "parents": [_parent_row(p) for p in self._parents.values()],
        }

    @classmethod
    def restore(
        cls,
        data: dict[str, Any],
        *,
        config: SlicingConfig | None = None,
        next_bar: int | None = None,
    ) -> WorkingOrders:
        """The :class:`WorkingOrders` of :meth:`snapshot` (pending cancellations are not kept).

        ``next_bar``: after a restart the new panel's bar indices differ from the saved ones;
        given, each parent's next child is due at ``next_bar`` and the rest keep their spacing.
        A malformed snapshot raises ``ValueError``.
        """
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown working-orders snapshot version {data.get('version')!r}")
        out = cls(config=config or SlicingConfig())
        try:
            for row in data["parents"]:
                p = _parent_from_row(row, next_bar)
                out._parents[(p.view.strategy, p.view.symbol)] = p
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"malformed working-orders snapshot: {err!r}") from err
        return out


def _parent_row(p: _Parent) -> dict[str, Any]:
    t, v, i = p.template, p.view, p.intent
    intent = {f: getattr(i, f) for f in Intent.__dataclass_fields__}
    intent["atr"] = float(i.atr) if math.isfinite(i.atr) else None
    intent["rules"] = list(i.rules)
    return {
        "order": {
            "symbol": t.symbol,
            "side": t.side.value,
            "order_type": t.order_type.value,
            "limit_price": t.limit_price,
            "time_in_force": t.time_in_force.value,
            "strategy": t.strategy,
            "created_at": None if t.created_at is None else t.created_at.isoformat(),
        },
        "intent": intent,
        "algo": v.algo.value,
        "quantity": v.quantity,
        "coids": list(v.coids),
        "quantities": list(v.quantities),
        "bars": list(v.bars),
        "sent": v.sent,
        "remainder": v.remainder,
        "last_bar": p.last_bar,
    }


def _parent_from_row(row: dict[str, Any], next_bar: int | None) -> _Parent:
    o = row["order"]
    created = o["created_at"]
    template = Order(
        client_order_id=row["coids"][0],
        symbol=str(o["symbol"]),
        side=Side(o["side"]),
        quantity=float(row["quantities"][0]),
        order_type=OrderType(o["order_type"]),
        limit_price=o["limit_price"],
        time_in_force=TimeInForce(o["time_in_force"]),
        strategy=str(o["strategy"]),
        created_at=None if created is None else datetime.fromisoformat(created),
    )
    fields = dict(row["intent"])
    fields["atr"] = float("nan") if fields.get("atr") is None else float(fields["atr"])
    fields["rules"] = tuple(fields.get("rules", ()))
    sent = int(row["sent"])
    bars = tuple(int(b) for b in row["bars"])
    last_bar = None if row["last_bar"] is None else int(row["last_bar"])
    if next_bar is not None and sent < len(bars):
        shift = next_bar - bars[sent]
        bars = tuple(b + shift for b in bars)
        last_bar = None
    view = WorkingParent(
        strategy=template.strategy,
        symbol=template.symbol,
        side=template.side,
        algo=ExecAlgo(row["algo"]),
        quantity=int(row["quantity"]),
        coids=tuple(str(c) for c in row["coids"]),
        quantities=tuple(int(q) for q in row["quantities"]),
        bars=bars,
        sent=sent,
        remainder=int(row["remainder"]),
    )
    if not (len(view.coids) == len(view.quantities) == len(bars) and 0 <= sent <= len(bars)):
        raise ValueError(f"malformed working-orders snapshot: inconsistent parent {row!r}")
    return _Parent(template=template, intent=Intent(**fields), view=view, last_bar=last_bar)
