"""PaperPortfolio accounting, with every number worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.brokers import Fill, Side
from sovereign.brokers.paper_portfolio import PaperPortfolio

T = datetime(2024, 1, 2, tzinfo=UTC)
_seq = iter(range(1_000_000))


def fill(symbol: str, side: Side, qty: float, price: float, commission: float = 0.0) -> Fill:
    n = next(_seq)
    return Fill(
        fill_id=f"f-{n}",
        client_order_id=f"c-{n}",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        commission=commission,
        timestamp=T,
    )


def identity_holds(p: PaperPortfolio) -> bool:
    rhs = p.initial_cash + p.realized_pnl + p.unrealized_pnl - p.total_commission
    return bool(np.isclose(p.equity, rhs, rtol=1e-12, atol=1e-6))


def test_long_round_trip() -> None:
    p = PaperPortfolio(10_000.0, symbols=["AAA", "BBB"])
    p.apply_fill(fill("AAA", Side.BUY, 10, 100.0, commission=1.0))
    assert p.cash == pytest.approx(8_999.0)  # 10_000 - 1_000 - 1
    assert p.quantity("AAA") == 10
    p.mark(np.array([105.0, np.nan]))
    assert p.unrealized_pnl == pytest.approx(50.0)
    assert p.equity == pytest.approx(10_049.0)  # 8_999 + 10 × 105
    p.apply_fill(fill("AAA", Side.SELL, 10, 110.0, commission=1.1))
    assert p.quantity("AAA") == 0
    assert p.realized_pnl == pytest.approx(100.0)  # gross of commission
    assert p.total_commission == pytest.approx(2.1)
    assert p.cash == pytest.approx(10_097.9)  # 8_999 + 1_100 - 1.1
    assert p.equity == pytest.approx(10_097.9)
    assert p.positions() == []
    assert identity_holds(p)


def test_short_round_trip() -> None:
    p = PaperPortfolio(10_000.0, symbols=["AAA"])
    p.apply_fill(fill("AAA", Side.SELL, 10, 100.0, commission=1.0))
    assert p.quantity("AAA") == -10
    assert p.cash == pytest.approx(10_999.0)
    p.mark(np.array([95.0]))
    assert p.unrealized_pnl == pytest.approx(50.0)  # -10 × (95 - 100)
    assert p.net_exposure == pytest.approx(-950.0)
    assert p.gross_exposure == pytest.approx(950.0)
    p.apply_fill(fill("AAA", Side.BUY, 10, 90.0, commission=0.9))
    assert p.realized_pnl == pytest.approx(100.0)
    assert p.cash == pytest.approx(10_098.1)  # 10_999 - 900 - 0.9
    assert p.equity == pytest.approx(10_098.1)
    assert identity_holds(p)


def test_adding_averages_and_reducing_keeps_the_average() -> None:
    p = PaperPortfolio(10_000.0, symbols=["AAA"])
    p.apply_fill(fill("AAA", Side.BUY, 10, 100.0))
    p.apply_fill(fill("AAA", Side.BUY, 10, 110.0))
    assert p.avg_prices[0] == pytest.approx(105.0)
    p.apply_fill(fill("AAA", Side.SELL, 5, 120.0))
    assert p.realized_pnl == pytest.approx(75.0)  # 5 × (120 - 105)
    assert p.avg_prices[0] == pytest.approx(105.0)
    assert p.quantity("AAA") == 15


def test_flip_through_zero() -> None:
    p = PaperPortfolio(10_000.0, symbols=["AAA"])
    p.apply_fill(fill("AAA", Side.BUY, 10, 100.0))
    p.apply_fill(fill("AAA", Side.SELL, 15, 110.0))
    assert p.quantity("AAA") == -5
    assert p.realized_pnl == pytest.approx(100.0)  # only the 10 closed shares
    assert p.avg_prices[0] == pytest.approx(110.0)  # the 5 opened short
    assert p.cash == pytest.approx(10_650.0)  # 10_000 - 1_000 + 1_650
    p.mark(np.array([120.0]))
    assert p.unrealized_pnl == pytest.approx(-50.0)  # -5 × (120 - 110)
    assert p.equity == pytest.approx(10_050.0)  # 10_650 - 600
    (pos,) = p.positions()
    assert (pos.symbol, pos.quantity, pos.avg_price, pos.market_price) == ("AAA", -5, 110, 120)
    # and back to long
    p.apply_fill(fill("AAA", Side.BUY, 8, 100.0))
    assert p.quantity("AAA") == 3
    assert p.realized_pnl == pytest.approx(150.0)  # + 5 × (110 - 100)
    assert p.avg_prices[0] == pytest.approx(100.0)
    assert identity_holds(p)


def test_exposure_fractions() -> None:
    p = PaperPortfolio(10_000.0, symbols=["AAA", "BBB"])
    assert p.gross_exposure_fraction == 0.0
    p.apply_fill(fill("AAA", Side.BUY, 20, 100.0))
    p.apply_fill(fill("BBB", Side.SELL, 10, 50.0))
    # cash 10_000 - 2_000 + 500 = 8_500; equity 8_500 + 2_000 - 500 = 10_000
    assert p.equity == pytest.approx(10_000.0)
    assert p.gross_exposure == pytest.approx(2_500.0)
    assert p.net_exposure == pytest.approx(1_500.0)
    assert p.gross_exposure_fraction == pytest.approx(0.25)
    assert p.net_exposure_fraction == pytest.approx(0.15)


def test_mark_keeps_last_price_where_nan_and_checks_shape() -> None:
    p = PaperPortfolio(1_000.0, symbols=["AAA", "BBB"])
    p.apply_fill(fill("AAA", Side.BUY, 1, 100.0))
    assert p.marks[0] == 100.0  # first fill sets the mark
    p.mark(np.array([101.0, 7.0]))
    p.mark(np.array([np.nan, 8.0]))
    np.testing.assert_array_equal(p.marks, [101.0, 8.0])
    assert p.equity_at(np.array([np.nan, 1.0])) == pytest.approx(900.0 + 101.0)
    with pytest.raises(ValueError, match="shape"):
        p.mark(np.array([1.0]))


def test_unknown_symbol_and_bad_inputs() -> None:
    p = PaperPortfolio(1_000.0, symbols=["AAA"])
    with pytest.raises(KeyError, match="ZZZ"):
        p.apply_fill(fill("ZZZ", Side.BUY, 1, 1.0))
    with pytest.raises(ValueError, match="duplicate"):
        PaperPortfolio(1.0, symbols=["A", "A"])
    with pytest.raises(ValueError, match="finite"):
        PaperPortfolio(float("nan"), symbols=["A"])


_fills = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 500),
        st.floats(1.0, 500.0),
        st.floats(0.0, 5.0),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_fills, st.floats(1.0, 500.0), st.floats(1.0, 500.0))
def test_equity_identity_on_any_fill_sequence(
    fills: list[tuple[str, Side, int, float, float]], mark_a: float, mark_b: float
) -> None:
    p = PaperPortfolio(50_000.0, symbols=["AAA", "BBB"])
    for symbol, side, qty, price, comm in fills:
        p.apply_fill(fill(symbol, side, qty, price, comm))
        assert identity_holds(p)
    p.mark(np.array([mark_a, mark_b]))
    assert identity_holds(p)
    report = p.account_report(T)
    assert (report.cash, report.realized_pnl) == (p.cash, pytest.approx(p.realized_pnl))
    assert report.equity == pytest.approx(p.equity)
    assert report.gross_exposure == pytest.approx(p.gross_exposure)
    assert report.net_exposure == pytest.approx(p.net_exposure)
    assert report.unrealized_pnl == pytest.approx(p.unrealized_pnl)
    assert len(p.positions()) == sum(1 for q in p.quantities if q != 0)
    net = {"AAA": 0, "BBB": 0}
    for symbol, side, qty, *_ in fills:
        net[symbol] += qty * side.sign
    assert p.quantity("AAA") == net["AAA"]
    assert p.quantity("BBB") == net["BBB"]
