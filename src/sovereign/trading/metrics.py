"""Performance metrics of an equity curve and its trades. Pure functions over numpy/pandas."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sovereign.trading.events import ClosedTrade


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year observed in ``index`` (≈252 for US daily bars)."""
    if len(index) < 2:
        return 252.0
    years = (index[-1] - index[0]).total_seconds() / (365.25 * 86400)
    return (len(index) - 1) / years if years > 0 else 252.0


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall of ``equity`` (shape (n,)), as a positive fraction."""
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def performance(
    equity: pd.Series,
    trades: Sequence[ClosedTrade] = (),
    *,
    traded_notional: float = 0.0,
    gross_exposure: pd.Series | None = None,
) -> dict[str, float]:
    """Sharpe, Sortino, Calmar (annualised, risk-free 0), CAGR, drawdown, turnover, exposure,
    and trade statistics, from an equity curve indexed by UTC timestamps (money)."""
    values = equity.to_numpy(dtype=float)
    out: dict[str, float] = {"bars": float(values.size)}
    if values.size < 2 or values[0] <= 0:
        return out | {"total_return": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": 0.0}
    ppy = periods_per_year(pd.DatetimeIndex(equity.index))
    rets = values[1:] / values[:-1] - 1.0
    mean, std = float(rets.mean()), float(rets.std(ddof=1)) if rets.size > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    years = (values.size - 1) / ppy
    total = values[-1] / values[0] - 1.0
    cagr = (values[-1] / values[0]) ** (1.0 / years) - 1.0 if years > 0 and values[-1] > 0 else -1.0
    mdd = max_drawdown(values)
    out |= {
        "total_return": float(total),
        "cagr": float(cagr),
        "volatility": std * math.sqrt(ppy),
        "sharpe": mean / std * math.sqrt(ppy) if std > 0 else 0.0,
        "sortino": mean / downside * math.sqrt(ppy) if downside > 0 else 0.0,
        "max_drawdown": mdd,
        "calmar": cagr / mdd if mdd > 0 else 0.0,
        "turnover": traded_notional / float(values.mean()) / years if years > 0 else 0.0,
    }
    if gross_exposure is not None and len(gross_exposure):
        out["exposure"] = float(np.mean(gross_exposure.to_numpy(dtype=float) / values))
    pnl = np.array([t.pnl for t in trades], dtype=float)
    out["trades"] = float(pnl.size)
    if pnl.size:
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        out["win_rate"] = float(wins.size / pnl.size)
        out["profit_factor"] = float(wins.sum() / -losses.sum()) if losses.size else math.inf
        out["avg_trade_pnl"] = float(pnl.mean())
    return out
