"""Order slicing (trading/slicing.py): which entries are worked over several bars, the children
handed out per bar with deterministic ids, cancellation, exact sums and persistence."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.brokers.models import Fill, Order, Side, client_order_id
from sovereign.engines.execution import ExecAlgo
from sovereign.errors import ConfigError, EngineError
from sovereign.trading.book import Book, Intent
from sovereign.trading.slicing import (
    SlicingConfig,
    WorkingOrders,
    average_daily_volume,
    order_seed,
)

T0 = datetime(2024, 1, 2, 21, tzinfo=UTC)
RS = "rs-test"
NS = "acct"


def entry(
    qty: float | None = 5_000, *, symbol: str = "AAA", fraction: float | None = None
) -> Order:
    return Order(
        client_order_id=coid("entry", symbol=symbol),
        symbol=symbol,
        side=Side.BUY,
        quantity=qty,
        equity_fraction=fraction,
        strategy="s",
        created_at=T0,
    )


def intent(symbol: str = "AAA", **kw: object) -> Intent:
    fields: dict[str, object] = {
        "strategy": "s",
        "symbol": symbol,
        "kind": "entry",
        "side": 1,
        "reason": "signal",
        "bar": 7,
        "ruleset_version": RS,
        "atr": 2.0,
        "stop_atr": 3.0,
        "rules": ("r-1",),
    }
    fields.update(kw)
    return Intent(**fields)  # type: ignore[arg-type]


def coid(leg: str, symbol: str = "AAA") -> str:
    return client_order_id(
        strategy="s", ruleset_version=RS, symbol=symbol, signal_time=T0, leg=leg, namespace=NS
    )


def start(
    w: WorkingOrders, order: Order, adv: float | None = 100_000, bar: int = 7
) -> Order | None:
    return w.start(
        order,
        intent=intent(order.symbol),
        bar=bar,
        adv=adv,
        seed=order_seed(order.client_order_id),
        ruleset_version=RS,
        namespace=NS,
        signal_time=T0,
    )


def run(w: WorkingOrders, bars: range) -> list[tuple[int, Order]]:
    return [(b, o) for b in bars for o, _ in w.due(b)]


# ---- the acceptance scenario ------------------------------------------------------------------


def test_5000_shares_at_1pct_of_100k_adv_become_five_twap_children_on_consecutive_bars() -> None:
    w = WorkingOrders()
    first = start(w, entry(5_000))
    assert first is not None
    assert first.quantity == 1_000
    assert first.client_order_id == coid("entry-1")
    assert (first.symbol, first.side, first.strategy, first.created_at) == (
        "AAA",
        Side.BUY,
        "s",
        T0,
    )
    parent = w.parent("s", "AAA")
    assert parent is not None
    assert parent.algo is ExecAlgo.TWAP
    assert parent.coids == tuple(coid(f"entry-{k}") for k in range(1, 6))
    assert parent.bars == (7, 8, 9, 10, 11)
    assert parent.remainder == 0
    assert w.pending() == {("s", "AAA"): 4_000}
    assert w.due(7) == []  # child 1 went out at bar 7 with start()

    later = run(w, range(8, 15))
    assert [(b, o.quantity, o.client_order_id) for b, o in later] == [
        (8, 1_000, coid("entry-2")),
        (9, 1_000, coid("entry-3")),
        (10, 1_000, coid("entry-4")),
        (11, 1_000, coid("entry-5")),
    ]
    assert all(o.side is Side.BUY and o.created_at == T0 for _, o in later)
    assert len({first.client_order_id, *(o.client_order_id for _, o in later)}) == 5
    assert w.pending() == {}
    assert w.parent("s", "AAA") is None

    again = WorkingOrders()  # same inputs, same ids and sizes
    assert start(again, entry(5_000)) == first
    assert run(again, range(8, 15)) == later


def test_due_hands_the_parents_intent_and_the_book_averages_the_children() -> None:
    w = WorkingOrders()
    book = Book()
    first = start(w, entry(5_000))
    assert first is not None
    book.intents[first.client_order_id] = intent()
    prices = iter([100.0, 102.0, 101.0, 99.0, 98.0])
    sent = [first]
    for b in range(8, 12):
        for child, it in w.due(b):
            assert it == intent()
            book.intents[child.client_order_id] = it
            sent.append(child)
    for n, o in enumerate(sent):
        assert o.quantity is not None
        book.apply_fill(
            Fill(
                fill_id=f"f{n}",
                client_order_id=o.client_order_id,
                symbol="AAA",
                side=Side.BUY,
                quantity=o.quantity,
                price=next(prices),
                commission=1.0,
                timestamp=T0,
                strategy="s",
            ),
            8 + n,
        )
    trade = book.open[("s", "AAA")]
    assert trade.quantity == 5_000
    assert trade.entry_price == pytest.approx(100.0)
    assert trade.commission == pytest.approx(5.0)


# ---- what passes through unchanged ------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "adv"),
    [
        (entry(1_000), 100_000),  # exactly the threshold: one child
        (entry(10), 100_000),
        (entry(5_000), None),  # no volume (closes-only panel)
        (entry(5_000), 0.0),
        (entry(5_000), float("nan")),
        (entry(None, fraction=0.05), 100_000),  # sized at fill time: cannot be split here
        (entry(5_000.5), 100_000),  # fractional shares
    ],
)
def test_orders_that_need_no_slicing_pass_through_unchanged(
    order: Order, adv: float | None
) -> None:
    w = WorkingOrders()
    assert start(w, order, adv=adv) is order
    assert w.pending() == {}
    assert w.parent("s", "AAA") is None
    assert w.due(8) == []


def test_nan_volume_gives_no_adv_and_the_order_goes_unsliced() -> None:
    volume = np.full((30, 2), np.nan)  # what a closes-only panel carries
    adv = average_daily_volume(volume, 29, 0, 20)
    assert adv is None
    w = WorkingOrders()
    order = entry(5_000)
    assert start(w, order, adv=adv) is order


def test_an_exit_is_never_sliced() -> None:
    order = Order(
        client_order_id="x",
        symbol="AAA",
        side=Side.SELL,
        quantity=5_000,
        strategy="s",
        reduce_only=True,
    )
    assert start(WorkingOrders(), order) is order


# ---- cancellation -----------------------------------------------------------------------------


def test_cancel_drops_the_rest_and_records_why() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    start(w, entry(3_000, symbol="BBB"))
    assert [o.symbol for o, _ in w.due(8)] == ["AAA", "BBB"]
    assert w.cancel("s", "AAA", "position exited") == 3
    assert w.cancel("s", "AAA", "again") == 0
    assert not w.is_working("s", "AAA")
    assert w.is_working("s", "BBB")
    assert [o.symbol for o, _ in w.due(9)] == ["BBB"]
    assert w.cancel_all("supervisor: no new risk") == 0  # BBB's three children are all out
    (c,) = w.drain_cancellations()
    assert (c.strategy, c.symbol, c.shares, c.reason) == ("s", "AAA", 3_000, "position exited")
    assert c.coids == (coid("entry-3"), coid("entry-4"), coid("entry-5"))
    assert w.drain_cancellations() == []
    assert run(w, range(10, 20)) == []


def test_cancel_all_stops_every_parent() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    start(w, entry(8_000, symbol="BBB"))
    assert w.cancel_all("halted") == 4 + 7
    assert w.pending() == {}
    assert run(w, range(8, 20)) == []
    assert {c.symbol for c in w.drain_cancellations()} == {"AAA", "BBB"}


def test_a_working_parent_cannot_be_started_twice() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    with pytest.raises(ValueError, match="still being worked"):
        start(w, entry(5_000))
    w.cancel("s", "AAA", "replace")
    assert start(w, entry(5_000)) is not None


def test_intent_must_match_the_order() -> None:
    w = WorkingOrders()
    with pytest.raises(ValueError, match="not for this order"):
        w.start(
            entry(5_000),
            intent=intent("BBB"),
            bar=0,
            adv=1e5,
            seed=0,
            ruleset_version=RS,
            namespace=NS,
            signal_time=T0,
        )


# ---- timing -----------------------------------------------------------------------------------


def test_a_missed_bar_delays_the_schedule_and_never_doubles_up() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    assert w.due(7) == []
    got = run(w, range(10, 20))  # bars 8 and 9 were skipped (the Trader stood down)
    assert [b for b, _ in got] == [10, 11, 12, 13]
    assert [o.client_order_id for _, o in got] == [coid(f"entry-{k}") for k in range(2, 6)]


def test_due_twice_in_one_bar_hands_out_one_child() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    stamp = datetime(2024, 1, 3, 21, tzinfo=UTC)
    (first,) = w.due(8, created_at=stamp)
    assert first[0].created_at == stamp
    assert w.due(8) == []


# ---- other algorithms -------------------------------------------------------------------------


def test_pov_reports_what_it_cannot_place() -> None:
    cfg = SlicingConfig(algo=ExecAlgo.POV, max_slices=3, pov_rate=0.02)
    w = WorkingOrders(config=cfg)
    first = start(w, entry(10_000), adv=100_000)  # 2,000 a bar for 3 bars
    assert first is not None
    assert first.quantity == 2_000
    parent = w.parent("s", "AAA")
    assert parent is not None
    assert parent.quantities == (2_000, 2_000, 2_000)
    assert parent.remainder == 4_000
    assert sum(parent.quantities) + parent.remainder == 10_000


def test_pov_that_can_place_nothing_says_do_not_trade() -> None:
    w = WorkingOrders(config=SlicingConfig(algo=ExecAlgo.POV))
    assert start(w, entry(50), adv=5.0) is None  # 10% of 5 shares rounds to zero a bar
    assert w.pending() == {}


def test_iceberg_is_seeded() -> None:
    cfg = SlicingConfig(algo=ExecAlgo.ICEBERG)
    sizes = []
    for seed in (1, 1, 2):
        w = WorkingOrders(config=cfg)
        w.start(
            entry(9_000),
            intent=intent(),
            bar=0,
            adv=100_000,
            seed=seed,
            ruleset_version=RS,
            namespace=NS,
            signal_time=T0,
        )
        parent = w.parent("s", "AAA")
        assert parent is not None
        assert sum(parent.quantities) == 9_000
        sizes.append(parent.quantities)
    assert sizes[0] == sizes[1]
    assert sizes[0] != sizes[2]


# ---- invariants -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    qty=st.integers(min_value=1, max_value=50_000_000),
    adv=st.floats(min_value=1.0, max_value=1e9),
    threshold=st.floats(min_value=1e-4, max_value=1.0),
    max_slices=st.integers(min_value=2, max_value=30),
    algo=st.sampled_from([ExecAlgo.TWAP, ExecAlgo.VWAP, ExecAlgo.ICEBERG, ExecAlgo.POV]),
)
def test_children_sum_exactly_to_the_parent(
    qty: int, adv: float, threshold: float, max_slices: int, algo: ExecAlgo
) -> None:
    cfg = SlicingConfig(participation_threshold=threshold, max_slices=max_slices, algo=algo)
    w = WorkingOrders(config=cfg)
    order = entry(qty)
    first = start(w, order, adv=adv, bar=0)
    if first is None:  # POV that cannot place a share
        assert algo is ExecAlgo.POV
        return
    parent = w.parent("s", "AAA")
    if first is order:
        assert parent is None
        return
    assert parent is not None
    sent = [first] + [o for _, o in run(w, range(1, 200))]
    quantities = [o.quantity for o in sent]
    assert all(q is not None and q >= 1 and float(q).is_integer() for q in quantities)
    assert int(sum(q for q in quantities if q is not None)) + parent.remainder == qty
    assert len({o.client_order_id for o in sent}) == len(sent) >= 2
    if algo is not ExecAlgo.POV:
        assert parent.remainder == 0
    if algo is ExecAlgo.TWAP:
        assert max(quantities) - min(quantities) <= 1  # type: ignore[operator]
    assert w.pending() == {}


# ---- persistence ------------------------------------------------------------------------------


def test_snapshot_restore_round_trip_through_json() -> None:
    w = WorkingOrders()
    start(w, entry(5_000))
    start(w, entry(3_000, symbol="BBB"))
    w.due(8)
    data = json.loads(json.dumps(w.snapshot()))
    back = WorkingOrders.restore(data)
    assert back.snapshot() == w.snapshot()
    assert back.pending() == w.pending() == {("s", "AAA"): 3_000, ("s", "BBB"): 1_000}
    assert back.due(8) == []  # bar 8's children already went out
    assert run(back, range(9, 15)) == run(w, range(9, 15))
    (_, it), *_ = WorkingOrders.restore(data).due(9)
    assert it == intent()


def test_restore_keeps_a_nan_atr_and_can_rebase_bars() -> None:
    w = WorkingOrders()
    w.start(
        entry(5_000),
        intent=intent(atr=float("nan")),
        bar=100,
        adv=100_000,
        seed=0,
        ruleset_version=RS,
        namespace=NS,
        signal_time=T0,
    )
    data = json.loads(json.dumps(w.snapshot()))
    back = WorkingOrders.restore(data, next_bar=3)  # a restart's panel counts bars anew
    got = [(b, o, it) for b in range(10) for o, it in back.due(b)]
    assert [(b, o.client_order_id) for b, o, _ in got] == [
        (3 + k, coid(f"entry-{k + 2}")) for k in range(4)
    ]
    assert np.isnan(got[0][2].atr)
    assert got[0][2].bar == 7  # the intent still names the signal's bar


@pytest.mark.parametrize(
    "data",
    [{}, {"version": 2, "parents": []}, {"version": 1}, {"version": 1, "parents": [{"order": {}}]}],
)
def test_a_malformed_snapshot_raises_value_error(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        WorkingOrders.restore(data)


# ---- ADV and config ---------------------------------------------------------------------------


def test_average_daily_volume() -> None:
    vol = np.arange(1.0, 61.0).reshape(30, 2)  # column 0: 1, 3, 5, ..., 59
    assert average_daily_volume(vol, 29, 0, 20) == pytest.approx(np.mean(vol[10:30, 0]))
    assert average_daily_volume(vol, 3, 0, 20) is None  # four bars of history
    assert average_daily_volume(vol, 4, 0, 20) == pytest.approx(np.mean(vol[:5, 0]))
    gappy = vol.copy()
    gappy[20:28, 1] = np.nan  # a gap is stepped over: still the last 20 finite values
    finite = gappy[:30, 1][np.isfinite(gappy[:30, 1])]
    assert average_daily_volume(gappy, 29, 1, 20) == pytest.approx(finite[-20:].mean())
    long_gap = vol.copy()
    long_gap[5:, 0] = np.nan
    assert average_daily_volume(long_gap, 29, 0, 20) == pytest.approx(np.mean(vol[:5, 0]))
    assert average_daily_volume(np.zeros((30, 1)), 29, 0, 20) is None
    with pytest.raises(EngineError):
        average_daily_volume(vol, 30, 0, 20)
    with pytest.raises(EngineError):
        average_daily_volume(vol[:, 0], 3, 0, 20)


@pytest.mark.parametrize(
    "kw",
    [
        {"participation_threshold": 0.0},
        {"participation_threshold": 1.5},
        {"max_slices": 1},
        {"adv_window": 4},
        {"pov_rate": 0.0},
        {"iceberg_variation": 1.0},
        {"algo": ExecAlgo.ALMGREN_CHRISS},
        {"algo": "twap"},
    ],
)
def test_config_is_validated(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SlicingConfig(**kw)  # type: ignore[arg-type]
