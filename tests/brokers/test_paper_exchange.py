"""PaperExchange as hand-written bar scenarios (candle tables) with the expected fills and cash.

Bars are daily; bar ``i`` closes at ``ts(i)``. Unless a test says otherwise the universe is one
symbol, "AAA", and orders are submitted after the last processed bar's close.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sovereign.brokers import (
    Fill,
    Order,
    OrderStatus,
    OrderType,
    PaperConfig,
    PaperExchange,
    Side,
    TimeInForce,
)
from sovereign.errors import BrokerError

NAN = math.nan
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)

# commission only, 0.1 %, so the numbers are easy to check by hand
SIMPLE = PaperConfig(costs="simple", commission_rate=0.001)
# realistic mechanics (cap, partial fills) but no spread, slippage or commission
NO_COST_CAPPED = PaperConfig(
    costs="realistic",
    commission_rate=0.0,
    half_spread_bps=0.0,
    slippage_vol_mult=0.0,
    slippage_participation_mult=0.0,
    participation_cap=0.1,
)


def ts(i: int) -> datetime:
    return T0 + timedelta(days=i)


def now(ex: PaperExchange) -> datetime:
    """Submission time: just after the last processed bar's close."""
    return ts(ex.current_bar) + timedelta(minutes=1)


Row = tuple[float, float, float, float, float]  # open, high, low, close, volume


def step(ex: PaperExchange, *rows: Row, volatility: Sequence[float] | None = None) -> list[Fill]:
    """Process the next bar: one (open, high, low, close, volume) row per symbol."""
    a = np.array(rows, dtype=float)
    vol = np.full(len(rows), NAN) if volatility is None else np.asarray(volatility, dtype=float)
    i = ex.current_bar + 1
    return ex.process_bar(i, ts(i), a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], vol)


def flat(price: float, volume: float = NAN) -> Row:
    return (price, price, price, price, volume)


def buy(cid: str, qty: float | None = None, **kw: object) -> Order:
    return Order(client_order_id=cid, symbol="AAA", side=Side.BUY, quantity=qty, **kw)  # type: ignore[arg-type]


def sell(cid: str, qty: float | None = None, **kw: object) -> Order:
    return Order(client_order_id=cid, symbol="AAA", side=Side.SELL, quantity=qty, **kw)  # type: ignore[arg-type]


def status(ex: PaperExchange, cid: str) -> OrderStatus:
    report = ex.get_order(cid)
    assert report is not None
    return report.status


# ---------------------------------------------------------------------------------- timing


def test_latency_one_fills_at_next_open() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=10_000.0)
    #         open   high   low    close  volume
    step(ex, (100.0, 101.0, 99.0, 101.0, NAN))  # bar 0
    assert ex.submit(buy("b", 10), now(ex)).status is OrderStatus.ACCEPTED
    fills = step(ex, (102.0, 104.0, 101.0, 103.0, NAN))  # bar 1: fills at its open
    assert [(f.quantity, f.price, f.timestamp) for f in fills] == [(10, 102.0, ts(1))]
    assert fills[0].commission == pytest.approx(1.02)  # 0.1 % of 1_020
    assert ex.portfolio.cash == pytest.approx(8_978.98)  # 10_000 - 1_020 - 1.02
    assert ex.portfolio.equity == pytest.approx(10_008.98)  # marked at the close, 103
    assert status(ex, "b") is OrderStatus.FILLED


def test_latency_two_skips_a_bar() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE.model_copy(update={"latency_bars": 2}), cash=1e4)
    step(ex, flat(100.0))  # bar 0
    ex.submit(buy("b", 10), now(ex))
    assert step(ex, flat(102.0)) == []  # bar 1: not yet
    assert status(ex, "b") is OrderStatus.ACCEPTED
    (f,) = step(ex, flat(104.0))  # bar 2
    assert (f.price, f.timestamp) == (104.0, ts(2))


def test_order_before_the_first_bar_trades_at_bar_zero() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    ex.submit(buy("b", 1), ts(-1))
    (f,) = step(ex, flat(50.0))
    assert f.timestamp == ts(0)


def test_bars_must_move_forward() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    step(ex, flat(1.0))
    a = np.array([1.0])
    with pytest.raises(ValueError, match="not after"):
        ex.process_bar(0, ts(5), a, a, a, a, a, a)
    with pytest.raises(ValueError, match="not after"):
        ex.process_bar(3, ts(0), a, a, a, a, a, a)
    with pytest.raises(ValueError, match="timezone"):
        ex.process_bar(3, datetime(2024, 5, 1), a, a, a, a, a, a)  # noqa: DTZ001
    with pytest.raises(ValueError, match="shape"):
        ex.process_bar(3, ts(3), np.ones(2), a, a, a, a, a)


# ----------------------------------------------------------------------------------- costs


def test_simple_costs_are_commission_only() -> None:
    ex = PaperExchange(["AAA"], config=PaperConfig(costs="simple"), cash=100_000.0)
    step(ex, flat(99.0, 100_000))
    ex.submit(buy("b", 100), now(ex))
    (f,) = step(ex, (100.0, 101.0, 99.0, 100.0, 100_000), volatility=[0.01])
    assert f.price == 100.0
    assert f.commission == pytest.approx(5.0)  # 0.0005 × 10_000
    assert f.slippage_cost == 0.0
    assert ex.portfolio.cash == pytest.approx(89_995.0)


def test_realistic_costs_by_hand() -> None:
    # half-spread 2 bps + 0.1 × volatility 0.01 + 0.1 × participation (100 / 100_000)
    # = 0.0002 + 0.001 + 0.0001 = 0.0013 of price
    ex = PaperExchange(["AAA"], config=PaperConfig(), cash=100_000.0)
    step(ex, flat(99.0, 100_000))
    ex.submit(buy("b", 100), now(ex))
    (f,) = step(ex, (100.0, 101.0, 99.0, 100.0, 100_000), volatility=[0.01])
    assert f.price == pytest.approx(100.13)
    assert f.commission == pytest.approx(5.0065)  # 0.0005 × 100 × 100.13
    assert f.slippage_cost == pytest.approx(13.0)  # 0.13 × 100
    assert ex.portfolio.cash == pytest.approx(89_981.9935)  # 100_000 - 10_013 - 5.0065
    assert ex.portfolio.total_slippage == pytest.approx(13.0)
    ex.submit(sell("s", 100), now(ex))
    (g,) = step(ex, (100.0, 101.0, 99.0, 100.0, 100_000), volatility=[0.01])
    assert g.price == pytest.approx(99.87)  # a sell is moved down
    assert ex.portfolio.realized_pnl == pytest.approx(-26.0)  # 100 × (99.87 - 100.13)


def test_nan_volatility_and_volume_cost_only_the_spread() -> None:
    ex = PaperExchange(["AAA"], config=PaperConfig(), cash=100_000.0)
    step(ex, flat(99.0))
    ex.submit(buy("b", 1_000), now(ex))
    (f,) = step(ex, flat(100.0, NAN), volatility=[NAN])  # unknown volume: no cap either
    assert f.quantity == 1_000
    assert f.price == pytest.approx(100.02)


# ---------------------------------------------------------------------------- partial fills


def test_participation_cap_carries_gtc_across_bars() -> None:
    ex = PaperExchange(["AAA"], config=NO_COST_CAPPED, cash=10_000.0)
    step(ex, flat(10.0, 1_000))
    ex.submit(buy("g", 70, time_in_force=TimeInForce.GTC), now(ex))
    #                        open  high  low   close volume      cap = 10 % of volume
    f1 = step(ex, (10.0, 10.0, 10.0, 10.0, 300))  #   30
    assert [f.quantity for f in f1] == [30]
    report = ex.get_order("g")
    assert report is not None
    assert (report.status, report.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 30)
    f2 = step(ex, (11.0, 11.0, 11.0, 11.0, 250))  #   25
    f3 = step(ex, (12.0, 12.0, 12.0, 12.0, 1_000))  # 100, only 15 left
    assert [(f.quantity, f.price) for f in f2 + f3] == [(25, 11.0), (15, 12.0)]
    assert [f.fill_id for f in f1 + f2 + f3] == ["g-1", "g-2", "g-3"]
    report = ex.get_order("g")
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert report.avg_fill_price == pytest.approx(755 / 70)  # (300 + 275 + 180) / 70
    assert ex.portfolio.cash == pytest.approx(10_000 - 755)


@pytest.mark.parametrize("tif", [TimeInForce.DAY, TimeInForce.IOC])
def test_participation_cap_cancels_the_rest_of_day_and_ioc(tif: TimeInForce) -> None:
    ex = PaperExchange(["AAA"], config=NO_COST_CAPPED, cash=10_000.0)
    step(ex, flat(10.0, 1_000))
    ex.submit(buy("d", 70, time_in_force=tif), now(ex))
    (f,) = step(ex, (10.0, 10.0, 10.0, 10.0, 300))
    assert f.quantity == 30
    report = ex.get_order("d")
    assert report is not None
    assert (report.status, report.filled_quantity) == (OrderStatus.CANCELED, 30)
    assert "participation cap" in report.reason
    assert step(ex, (10.0, 10.0, 10.0, 10.0, 10_000)) == []
    assert ex.portfolio.quantity("AAA") == 30
    assert ex.open_orders() == []


def test_simple_mode_has_no_participation_cap() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e6)
    step(ex, flat(10.0, 100))
    ex.submit(buy("b", 5_000), now(ex))
    (f,) = step(ex, flat(10.0, 100))
    assert f.quantity == 5_000


def test_participation_slippage_grows_with_the_filled_share() -> None:
    cfg = NO_COST_CAPPED.model_copy(update={"slippage_participation_mult": 0.5})
    ex = PaperExchange(["AAA"], config=cfg, cash=1e6)
    step(ex, flat(100.0, 1_000))
    ex.submit(buy("b", 50), now(ex))
    (f,) = step(ex, flat(100.0, 1_000))
    assert f.price == pytest.approx(100.0 * (1 + 0.5 * 50 / 1_000))  # 102.5


# ----------------------------------------------------------------------------------- limits


def limit(cid: str, side: Side, qty: float, price: float, tif: TimeInForce) -> Order:
    return Order(
        client_order_id=cid,
        symbol="AAA",
        side=side,
        quantity=qty,
        order_type=OrderType.LIMIT,
        limit_price=price,
        time_in_force=tif,
    )


@pytest.mark.parametrize(
    ("side", "limit_price", "bar", "expected"),
    [
        #                 open   high   low    close
        (Side.BUY, 98.0, (100.0, 101.0, 97.0, 100.0), 98.0),  # reached intrabar: at the limit
        (Side.BUY, 101.0, (100.0, 101.0, 97.0, 100.0), 100.0),  # open is better: at the open
        (Side.BUY, 96.0, (100.0, 101.0, 97.0, 100.0), None),  # low 97 never reaches 96
        (Side.SELL, 105.0, (100.0, 106.0, 99.0, 100.0), 105.0),
        (Side.SELL, 95.0, (100.0, 106.0, 99.0, 100.0), 100.0),
        (Side.SELL, 107.0, (100.0, 106.0, 99.0, 100.0), None),
    ],
)
def test_limit_orders(
    side: Side, limit_price: float, bar: tuple[float, ...], expected: float | None
) -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e5)
    step(ex, flat(100.0))
    ex.submit(limit("l", side, 10, limit_price, TimeInForce.DAY), now(ex))
    fills = step(ex, (*bar, NAN))  # type: ignore[arg-type]
    if expected is None:
        assert fills == []
        assert status(ex, "l") is OrderStatus.EXPIRED  # a DAY order lives one bar
    else:
        assert [f.price for f in fills] == [expected]


def test_gtc_limit_waits_until_reached() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e5)
    step(ex, flat(100.0))
    ex.submit(limit("l", Side.BUY, 10, 95.0, TimeInForce.GTC), now(ex))
    assert step(ex, (100.0, 101.0, 96.0, 99.0, NAN)) == []
    waiting = ex.get_order("l")
    assert waiting is not None
    assert (waiting.status, waiting.reason) == (OrderStatus.ACCEPTED, "limit not reached")
    (f,) = step(ex, (97.0, 98.0, 94.0, 95.5, NAN))
    assert f.price == 95.0
    done = ex.get_order("l")
    assert done is not None
    assert (done.status, done.reason) == (OrderStatus.FILLED, "")


def test_realistic_costs_never_push_a_limit_fill_past_its_limit() -> None:
    ex = PaperExchange(["AAA"], config=PaperConfig(), cash=1e5)
    step(ex, flat(100.0))
    ex.submit(limit("l", Side.BUY, 10, 100.05, TimeInForce.DAY), now(ex))
    (f,) = step(ex, (100.0, 100.5, 99.5, 100.0, 1e6), volatility=[0.01])
    assert f.price == pytest.approx(100.05)  # 100 × 1.0012 = 100.12 capped at the limit
    assert f.slippage_cost == pytest.approx(0.5)  # 0.05 × 10


# -------------------------------------------------------------------------- equity fraction


def test_equity_fraction_is_whole_shares_by_the_floor_formula() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=10_000.0)
    step(ex, flat(120.0))
    report = ex.submit(
        Order(client_order_id="e", symbol="AAA", side=Side.BUY, equity_fraction=0.5), now(ex)
    )
    assert report.quantity is None  # resolved at fill time
    (f,) = step(ex, flat(123.45))
    # floor(10_000 × 0.5 / (123.45 × 1.001)) = floor(40.46) = 40
    assert f.quantity == 40 == int(10_000 * 0.5 // (123.45 * 1.001))
    report = ex.get_order("e")
    assert report is not None
    assert (report.quantity, report.status) == (40, OrderStatus.FILLED)


def test_equity_fraction_counts_positions_at_this_bars_open() -> None:
    ex = PaperExchange(
        ["AAA", "BBB"], config=SIMPLE.model_copy(update={"commission_rate": 0.0}), cash=6_000.0
    )
    step(ex, flat(100.0), flat(40.0))
    ex.submit(Order(client_order_id="h", symbol="BBB", side=Side.BUY, quantity=25), now(ex))
    step(ex, flat(100.0), flat(40.0))  # cash 6_000 - 1_000 = 5_000, 25 BBB
    ex.submit(buy("e", equity_fraction=0.3), now(ex))
    # equity at this open: 5_000 + 25 × 60 = 6_500; 0.3 × 6_500 = 1_950; 1_950 // 150 = 13
    (f,) = step(ex, flat(150.0), flat(60.0))
    assert f.quantity == 13
    # a symbol with no bar is valued at its last known price
    e2 = Order(client_order_id="e2", symbol="BBB", side=Side.BUY, equity_fraction=0.1)
    ex.submit(e2, now(ex))
    # AAA has no bar, so it is valued at its last close, 150:
    # equity = cash (5_000 - 1_950) + 13 × 150 + 25 × 80 = 7_000; 700 // 80 = 8
    (g,) = step(ex, (NAN, NAN, NAN, NAN, NAN), flat(80.0))
    assert (g.symbol, g.quantity) == ("BBB", 8)


def test_equity_fraction_with_too_little_equity_is_canceled() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=100.0)
    step(ex, flat(200.0))
    ex.submit(buy("e", equity_fraction=0.5), now(ex))
    assert step(ex, flat(200.0)) == []
    report = ex.get_order("e")
    assert report is not None
    assert (report.status, report.reason) == (OrderStatus.CANCELED, "insufficient equity")


def test_equity_fraction_sizing_leaves_room_for_participation_slippage() -> None:
    cfg = NO_COST_CAPPED.model_copy(
        update={"slippage_participation_mult": 1.0, "participation_cap": None}
    )
    ex = PaperExchange(["AAA"], config=cfg, cash=10_000.0)
    step(ex, flat(100.0, 1_000))
    ex.submit(buy("e", equity_fraction=1.0), now(ex))
    (f,) = step(ex, flat(100.0, 1_000))
    # 100 shares at the open would cost 100 × 110 with 10 % participation slippage: re-sized
    assert f.quantity * f.price <= 10_000.0
    assert ex.portfolio.cash >= 0.0


@pytest.mark.parametrize(("fraction", "commission"), [(0.5, 0.001), (0.95, 0.002), (0.1, 0.0)])
def test_equity_fraction_matches_backtesting_py(fraction: float, commission: float) -> None:
    """Golden check against backtesting.py's relative sizing (a reference library run once)."""
    backtesting = pytest.importorskip("backtesting")
    rng = np.random.default_rng(42)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 6)))
    open_ = close * (1 + rng.normal(0, 0.005, 6))
    frame = pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.01,
            "Low": np.minimum(open_, close) * 0.99,
            "Close": close,
            "Volume": 1e9,
        },
        index=pd.date_range("2024-01-01", periods=6, freq="D"),
    )

    class BuyOnce(backtesting.Strategy):  # type: ignore[misc, name-defined]
        def init(self) -> None:
            pass

        def next(self) -> None:
            if len(self.data) == 2:  # backtesting.py's first next() is at bar 1
                self.buy(size=fraction)

    bt = backtesting.Backtest(
        frame, BuyOnce, cash=10_000, commission=commission, finalize_trades=True
    )
    with warnings.catch_warnings():
        # backtesting.py trips pandas deprecation warnings on its own internals; third-party noise.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        trades = bt.run()._trades
    ref_size, ref_price = int(trades["Size"].iloc[0]), float(trades["EntryPrice"].iloc[0])

    cfg = PaperConfig(costs="simple", commission_rate=commission)
    ex = PaperExchange(["AAA"], config=cfg, cash=10_000.0)
    for i in range(2):
        step(ex, (open_[i], frame["High"].iloc[i], frame["Low"].iloc[i], close[i], 1e9))
    ex.submit(buy("e", equity_fraction=fraction), now(ex))
    (f,) = step(ex, (open_[2], frame["High"].iloc[2], frame["Low"].iloc[2], close[2], 1e9))
    assert (f.quantity, f.price) == (ref_size, pytest.approx(ref_price))


# ------------------------------------------------------------------ idempotence and rejection


def test_duplicate_submit_creates_one_order_and_one_fill() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    step(ex, flat(10.0))
    first = ex.submit(buy("dup", 5), now(ex))
    second = ex.submit(buy("dup", 5), now(ex))
    assert first == second
    assert len(ex.open_orders()) == 1
    fills = step(ex, flat(10.0))
    assert [f.fill_id for f in fills] == ["dup-1"]
    assert ex.submit(buy("dup", 5), now(ex)).status is OrderStatus.FILLED
    assert step(ex, flat(10.0)) == []
    assert ex.portfolio.quantity("AAA") == 5


def _rejections(seed: int, costs: str = "realistic") -> list[OrderStatus]:
    cfg = PaperConfig(costs=costs, reject_probability=0.5)  # type: ignore[arg-type]
    ex = PaperExchange(["AAA"], config=cfg, cash=1e6, seed=seed)
    return [ex.submit(buy(f"o{k}", 1), ts(0)).status for k in range(40)]


def test_seeded_random_rejection_is_reproducible() -> None:
    a = _rejections(1)
    assert a == _rejections(1)
    assert a != _rejections(2)
    assert OrderStatus.REJECTED in a
    assert OrderStatus.ACCEPTED in a
    assert set(_rejections(1, costs="simple")) == {OrderStatus.ACCEPTED}


def test_unknown_symbol_and_forbidden_short_are_rejected_with_a_reason() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE.model_copy(update={"allow_short": False}), cash=1e4)
    bad = ex.submit(Order(client_order_id="x", symbol="ZZZ", side=Side.BUY, quantity=1), ts(0))
    assert (bad.status, bad.reason) == (OrderStatus.REJECTED, "unknown symbol 'ZZZ'")
    short = ex.submit(sell("s", 1), ts(0))
    assert short.status is OrderStatus.REJECTED
    assert "short" in short.reason
    step(ex, flat(10.0))
    ex.submit(buy("b", 5), now(ex))
    step(ex, flat(10.0))
    assert ex.submit(sell("s2", 6), now(ex)).status is OrderStatus.REJECTED
    assert ex.submit(sell("s3", 5), now(ex)).status is OrderStatus.ACCEPTED


# -------------------------------------------------------------------- round trips and flips


def test_long_round_trip_by_hand() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=10_000.0)
    step(ex, flat(99.0))
    ex.submit(buy("b", 10), now(ex))
    step(ex, (100.0, 106.0, 99.0, 105.0, NAN))  # buy 10 @ 100, commission 1.00
    ex.submit(sell("s", 10), now(ex))
    step(ex, (110.0, 111.0, 108.0, 109.0, NAN))  # sell 10 @ 110, commission 1.10
    p = ex.portfolio
    assert p.realized_pnl == pytest.approx(100.0)
    assert p.total_commission == pytest.approx(2.1)
    assert p.cash == pytest.approx(10_097.9)
    assert p.equity == pytest.approx(10_097.9)


def test_short_round_trip_by_hand() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=10_000.0)
    step(ex, flat(99.0))
    ex.submit(sell("s", 10), now(ex))
    step(ex, (100.0, 101.0, 94.0, 95.0, NAN))  # short 10 @ 100, commission 1.00
    assert ex.portfolio.equity == pytest.approx(10_049.0)  # 10_999 - 10 × 95
    ex.submit(buy("b", 10), now(ex))
    step(ex, (90.0, 91.0, 89.0, 90.0, NAN))  # cover 10 @ 90, commission 0.90
    assert ex.portfolio.realized_pnl == pytest.approx(100.0)
    assert ex.portfolio.cash == pytest.approx(10_098.1)


def test_flip_through_zero_by_hand() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE.model_copy(update={"commission_rate": 0.0}), cash=1e4)
    step(ex, flat(99.0))
    ex.submit(buy("b", 10), now(ex))
    step(ex, flat(100.0))
    ex.submit(sell("s", 15), now(ex))
    step(ex, (110.0, 121.0, 109.0, 120.0, NAN))
    (pos,) = ex.portfolio.positions()
    assert (pos.quantity, pos.avg_price, pos.market_price) == (-5, 110.0, 120.0)
    assert ex.portfolio.realized_pnl == pytest.approx(100.0)
    assert ex.portfolio.unrealized_pnl == pytest.approx(-50.0)
    assert ex.portfolio.equity == pytest.approx(10_050.0)


def test_reduce_only_is_capped_at_the_position() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    step(ex, flat(10.0))
    ex.submit(buy("b", 10), now(ex))
    step(ex, flat(10.0))
    ex.submit(sell("x", 25, reduce_only=True), now(ex))
    ex.submit(sell("y", 5, reduce_only=True), now(ex))  # nothing left once x has filled
    fills = step(ex, flat(11.0))
    assert [(f.client_order_id, f.quantity) for f in fills] == [("x", 10)]
    x, y = ex.get_order("x"), ex.get_order("y")
    assert x is not None
    assert y is not None
    assert (x.status, x.quantity, x.filled_quantity) == (OrderStatus.FILLED, 10, 10)
    assert y.status is OrderStatus.CANCELED
    assert "no position" in y.reason
    assert ex.portfolio.quantity("AAA") == 0


# ----------------------------------------------------------------------- missing bars, cancel


def test_nan_open_does_not_trade() -> None:
    ex = PaperExchange(["AAA", "BBB"], config=SIMPLE, cash=1e4)
    step(ex, flat(10.0), flat(20.0))
    ex.submit(buy("day", 1), now(ex))
    ex.submit(buy("gtc", 1, time_in_force=TimeInForce.GTC), now(ex))
    assert step(ex, (NAN, NAN, NAN, NAN, NAN), flat(20.0)) == []
    assert status(ex, "day") is OrderStatus.EXPIRED
    assert status(ex, "gtc") is OrderStatus.ACCEPTED
    (f,) = step(ex, flat(11.0), flat(20.0))
    assert (f.client_order_id, f.price) == ("gtc", 11.0)


def test_cancel() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    step(ex, flat(10.0))
    ex.submit(buy("c", 1, time_in_force=TimeInForce.GTC), now(ex))
    report = ex.cancel("c", now(ex))
    assert (report.status, report.reason) == (OrderStatus.CANCELED, "canceled by client")
    assert ex.open_orders() == []
    assert step(ex, flat(10.0)) == []
    assert ex.cancel("c", now(ex)) == report  # canceling a closed order changes nothing
    with pytest.raises(BrokerError, match="unknown"):
        ex.cancel("nope", now(ex))


def test_fills_since_is_inclusive() -> None:
    ex = PaperExchange(["AAA"], config=SIMPLE, cash=1e4)
    step(ex, flat(10.0))
    ex.submit(buy("a", 1), now(ex))
    step(ex, flat(10.0))
    ex.submit(buy("b", 1), now(ex))
    step(ex, flat(10.0))
    assert [f.client_order_id for f in ex.fills_since(None)] == ["a", "b"]
    assert [f.client_order_id for f in ex.fills_since(ts(2))] == ["b"]
    assert [f.client_order_id for f in ex.fills_since(ts(1) + timedelta(hours=1))] == ["b"]
    assert ex.fills_since(ts(3)) == []


# ---------------------------------------------------------------- determinism and speed


def _random_session(seed: int) -> list[Fill]:
    rng = np.random.default_rng(0)
    ex = PaperExchange(
        ["A", "B", "C"], config=PaperConfig(reject_probability=0.2), cash=1e5, seed=seed
    )
    price = np.full(3, 50.0)
    for i in range(60):
        for k, sym in enumerate(["A", "B", "C"]):
            if rng.random() < 0.3:
                side = Side.BUY if rng.random() < 0.6 else Side.SELL
                ex.submit(
                    Order(
                        client_order_id=f"{i}-{k}",
                        symbol=sym,
                        side=side,
                        quantity=float(rng.integers(1, 400)),
                        time_in_force=TimeInForce.GTC,
                    ),
                    ts(i - 1) + timedelta(minutes=1),
                )
        o = price * (1 + rng.normal(0, 0.01, 3))
        c = o * (1 + rng.normal(0, 0.01, 3))
        ex.process_bar(
            i,
            ts(i),
            o,
            np.maximum(o, c),
            np.minimum(o, c),
            c,
            rng.uniform(500, 5_000, 3),
            np.full(3, 0.01),
        )
        price = c
    return list(ex.fills)


def test_same_seed_same_everything() -> None:
    a = _random_session(5)
    assert a
    assert a == _random_session(5)
    assert a != _random_session(6)


def test_idle_bars_are_cheap() -> None:
    """8,300 bars × 20 symbols with nothing pending must cost milliseconds, not seconds."""
    n_bars, n_sym = 8_300, 20
    rng = np.random.default_rng(42)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_bars, n_sym)), axis=0))
    vol = np.full((n_bars, n_sym), 1e6)
    sigma = np.full((n_bars, n_sym), 0.01)
    ex = PaperExchange([f"S{k}" for k in range(n_sym)], cash=1e6)
    stamps = [T0 + timedelta(days=i) for i in range(n_bars)]
    start = time.perf_counter()
    for i in range(n_bars):
        c = close[i]
        ex.process_bar(i, stamps[i], c, c, c, c, vol[i], sigma[i])
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{elapsed:.3f}s for {n_bars} idle bars"
