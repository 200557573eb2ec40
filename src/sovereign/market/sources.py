"""Bundled real market data, loaded from installed packages with no network access.

- ``sp500``: skfolio's S&P 500 dataset, 20 US large caps, daily adjusted closes 1990-01-02 to
  2022-12-28 (closes only: open = high = low = close, volume NaN).
- ``sp500_index`` / ``nasdaq_index``: arch's bundled S&P 500 (``SPX``) and NASDAQ Composite
  (``IXIC``) daily open/high/low/close/volume, 1999-01-04 to 2018-12-31.
- ``indices``: both indices in one aligned panel (they share every session).

Daily bars are stamped with the session date at 00:00 UTC. That is a label for the session, not
its true close time (16:00 New York); a caller that needs intraday alignment must not rely on it.

Data repairs, applied explicitly (and counted by :func:`sample_repairs`):

- OHLC consistency: ``high`` is raised to ``max(open, high, close)`` and ``low`` lowered to
  ``min(open, low, close)``. The bundled files currently need no such repair.
- Zero volume on an index is a vendor error (an index always trades): it becomes NaN, i.e.
  "volume unknown for this bar", so a volume rule sees a missing value rather than a false zero.
  arch's NASDAQ file has two such bars (2015-05-12 and 2018-01-09).

Loaded panels are cached per process and their arrays are read-only, so the one cached panel can
be shared safely: copy an array before changing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from sovereign.errors import ConfigError, DataError
from sovereign.market.bars import OHLCV_COLUMNS, BarPanel, Feature


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleInfo:
    """What a bundled sample holds."""

    description: str
    features: frozenset[Feature]
    symbols: tuple[str, ...]


# fmt: off
_SP500_SYMBOLS = (
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)
# fmt: on
_OHLCV = frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME})

SAMPLES: dict[str, SampleInfo] = {
    "sp500": SampleInfo(
        description="skfolio S&P 500: 20 US stocks, daily adjusted closes, 1990-2022",
        features=frozenset({Feature.CLOSE}),
        symbols=_SP500_SYMBOLS,
    ),
    "sp500_index": SampleInfo(
        description="arch S&P 500 index (SPX): daily OHLCV, 1999-2018",
        features=_OHLCV,
        symbols=("SPX",),
    ),
    "nasdaq_index": SampleInfo(
        description="arch NASDAQ Composite (IXIC): daily OHLCV, 1999-2018",
        features=_OHLCV,
        symbols=("IXIC",),
    ),
    "indices": SampleInfo(
        description="SPX and IXIC aligned: daily OHLCV, 1999-2018",
        features=_OHLCV,
        symbols=("SPX", "IXIC"),
    ),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Repairs:
    """Bars changed while loading a sample, per column (counts of cells)."""

    high_raised: int
    low_lowered: int
    zero_volume_to_nan: int


def available_samples() -> tuple[str, ...]:
    """Names accepted by :func:`load_sample`."""
    return tuple(SAMPLES)


def load_sample(name: str = "sp500") -> BarPanel:
    """A bundled sample as a :class:`BarPanel` (cached; arrays read-only).

    Raises :class:`ConfigError` for an unknown name, listing the valid ones.
    """
    return _load(_check_name(name))[0]


def sample_repairs(name: str) -> Repairs:
    """What :func:`load_sample` repaired in ``name`` (see the module docstring)."""
    return _load(_check_name(name))[1]


def _check_name(name: str) -> str:
    if name not in SAMPLES:
        raise ConfigError(f"unknown sample {name!r}; valid names: {', '.join(available_samples())}")
    return name


@lru_cache(maxsize=len(SAMPLES))
def _load(name: str) -> tuple[BarPanel, Repairs]:
    source = f"sample:{name}"
    if name == "sp500":
        panel, repairs = _sp500(source), Repairs(high_raised=0, low_lowered=0, zero_volume_to_nan=0)
    else:
        frames = {
            "sp500_index": {"SPX": _arch("sp500")},
            "nasdaq_index": {"IXIC": _arch("nasdaq")},
            "indices": {"SPX": _arch("sp500"), "IXIC": _arch("nasdaq")},
        }[name]
        panel, repairs = _ohlcv_panel(frames, source)
    for arr in (panel.open, panel.high, panel.low, panel.close, panel.volume):
        arr.flags.writeable = False
    return panel, repairs


def _session_index(index: pd.Index) -> pd.DatetimeIndex:
    """Session dates -> 00:00 UTC of that date."""
    return pd.DatetimeIndex(index).normalize().tz_localize("UTC")


def _sp500(source: str) -> BarPanel:
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset()
    closes = prices.astype(np.float64)
    closes.index = _session_index(prices.index)
    values = closes.to_numpy()
    if (values[np.isfinite(values)] <= 0).any():
        raise DataError("non-positive price in the bundled S&P 500 data", source=source)
    return BarPanel.from_closes(closes, source=source)


def _arch(which: str) -> pd.DataFrame:
    from arch.data import nasdaq, sp500

    raw = (sp500 if which == "sp500" else nasdaq).load()
    frame = pd.DataFrame(
        {col: raw[col.capitalize()].to_numpy(dtype=np.float64) for col in OHLCV_COLUMNS},
        index=_session_index(raw.index),
    )
    return frame


def _ohlcv_panel(frames: dict[str, pd.DataFrame], source: str) -> tuple[BarPanel, Repairs]:
    index = frames[next(iter(frames))].index
    for frame in frames.values():
        index = index.union(frame.index)
    arrays = {
        col: np.column_stack([f[col].reindex(index).to_numpy() for f in frames.values()])
        for col in OHLCV_COLUMNS
    }
    o, h, lo, c, v = (arrays[col] for col in OHLCV_COLUMNS)
    with np.errstate(invalid="ignore"):
        top = np.fmax(np.fmax(o, c), h)
        bottom = np.fmin(np.fmin(o, c), lo)
        repairs = Repairs(
            high_raised=int((top > h).sum()),
            low_lowered=int((bottom < lo).sum()),
            zero_volume_to_nan=int((v == 0).sum()),
        )
    arrays["high"], arrays["low"] = top, bottom
    arrays["volume"] = np.where(v == 0, np.nan, v)
    prices = np.stack([arrays[col] for col in ("open", "high", "low", "close")])
    if (prices[np.isfinite(prices)] <= 0).any():
        raise DataError("non-positive price in bundled index data", source=source)
    panel = BarPanel(
        timestamps=pd.DatetimeIndex(index),
        symbols=tuple(frames),
        open=arrays["open"],
        high=arrays["high"],
        low=arrays["low"],
        close=arrays["close"],
        volume=arrays["volume"],
        features=_OHLCV,
        source=source,
    )
    return panel, repairs
