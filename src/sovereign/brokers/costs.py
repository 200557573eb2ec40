"""Trading costs of the paper exchange as pure functions.

Prices are in the quote currency, quantities in shares (positive), fractions are plain fractions
of price (``0.0002`` = 2 bps). Nothing here reads state; the exchange hands everything in.
"""

from __future__ import annotations

import math

from sovereign.brokers.models import Side

BPS = 1e-4


def cost_fraction(
    *,
    half_spread_bps: float,
    volatility: float,
    participation: float,
    vol_mult: float,
    participation_mult: float,
) -> float:
    """Adverse price move of one fill, as a fraction of the reference price.

    ``half_spread_bps`` × 1e-4 + ``vol_mult`` × ``volatility`` (the bar's return std; NaN counts as
    0) + ``participation_mult`` × ``participation`` (filled quantity / bar volume; NaN counts as 0).
    """
    vol = 0.0 if math.isnan(volatility) else max(volatility, 0.0)
    part = 0.0 if math.isnan(participation) else max(participation, 0.0)
    return half_spread_bps * BPS + vol_mult * vol + participation_mult * part


def fill_price(
    reference: float, side: Side, fraction: float, *, limit_price: float | None = None
) -> float:
    """``reference`` moved against the trader by ``fraction``: up for a buy, down for a sell.

    With ``limit_price`` the result never is worse than the limit (a limit order fills at its
    limit or better, so costs are absorbed up to the limit).
    """
    price = reference * (1.0 + side.sign * fraction)
    if limit_price is not None:
        price = min(price, limit_price) if side is Side.BUY else max(price, limit_price)
    return price


def commission(
    quantity: float, price: float, *, rate: float, per_share: float = 0.0, minimum: float = 0.0
) -> float:
    """Commission of one fill in money: ``max(minimum, rate × |qty| × price + per_share × |qty|)``.

    A zero quantity costs nothing (the minimum is charged per fill, not per order).
    """
    qty = abs(quantity)
    if qty == 0:
        return 0.0
    return max(minimum, rate * qty * price + per_share * qty)


def whole_shares_for_fraction(
    equity: float,
    fraction: float,
    price: float,
    *,
    commission_rate: float,
    commission_per_share: float = 0.0,
) -> int:
    """Whole shares that ``fraction`` of ``equity`` buys at ``price`` after commission.

    ``floor(equity × fraction / (price × (1 + commission_rate) + commission_per_share))``; with
    ``commission_per_share = 0`` this is backtesting.py's relative sizing when flat,
    ``int(margin_available * size // (price * (1 + commission)))``. Floor division (``//``) is
    used, as backtesting.py does, so the two agree to the last share. Returns 0 when the inputs
    are not finite or not positive.
    """
    unit_cost = price * (1.0 + commission_rate) + commission_per_share
    budget = equity * fraction
    if not (math.isfinite(unit_cost) and math.isfinite(budget)) or unit_cost <= 0 or budget <= 0:
        return 0
    return int(budget // unit_cost)
