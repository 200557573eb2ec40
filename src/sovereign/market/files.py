"""User market data files: CSV, gzipped CSV and Parquet in the documented long schema.

See :mod:`sovereign.market.validation` for the schema and the checks. Loading is strict: the
whole file is validated before anything is returned, and the first problem raises
:class:`~sovereign.errors.DataError` with the file, row and column to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sovereign.errors import DataError
from sovereign.market.bars import OHLCV_COLUMNS, BarPanel, Feature
from sovereign.market.validation import normalize_frame

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")


def load_file(
    path: str | Path,
    *,
    symbols: Sequence[str] | None = None,
    gap_tolerance: float | None = 10.0,
) -> BarPanel:
    """Load and validate a market data file into an aligned :class:`BarPanel`.

    ``path``: a ``.csv``, ``.csv.gz`` or ``.parquet`` file in the documented long schema.
    ``symbols``: keep only these symbols, in this order (default: all, in order of first
    appearance in the file). The whole file is validated first either way.
    ``gap_tolerance``: see :func:`~sovereign.market.validation.validate_frame`.

    The panel's timestamps are the sorted union of all bar timestamps (UTC); a symbol with no bar
    at a timestamp holds NaN there. Features: CLOSE always, OHLC when the file has open/high/low,
    VOLUME when it has volume. A closes-only file gets open = high = low = close and NaN volume.
    """
    file = Path(path)
    source = str(file)
    frame = _read(file, source)
    if len(frame) == 0:
        raise DataError("the file has a header but no data rows", source=source)
    clean = normalize_frame(frame, source=source, gap_tolerance=gap_tolerance)
    names = list(pd.unique(clean["symbol"]))
    if symbols is not None:
        names = _check_symbols(names, list(symbols), source)
        clean = clean[clean["symbol"].isin(names)]
    return _to_panel(clean, names, source)


def write_csv(panel: BarPanel, path: str | Path) -> None:
    """Write ``panel`` in the documented long schema (``.csv`` or ``.csv.gz`` by suffix).

    Timestamps are ISO 8601 with ``+00:00``; open/high/low are written only when the panel has
    the OHLC feature, volume only with the VOLUME feature; cells with no bar are skipped. Floats
    are written in shortest round-trip form, so :func:`load_file` gives back the same values.
    """
    file = Path(path)
    if not file.name.lower().endswith((".csv", ".csv.gz")):
        raise DataError("write_csv writes .csv or .csv.gz files", source=str(file))
    stamps = panel.timestamps.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if (stamps.microsecond != 0).any() else "%Y-%m-%dT%H:%M:%S"
    text = np.asarray(stamps.strftime(fmt), dtype=object) + "+00:00"  # one string per bar
    frame = panel.to_frame()  # rows with a bar, in (timestamp, symbol) order
    has_bar = np.isfinite(panel.close).reshape(-1)
    frame["timestamp"] = np.repeat(text, panel.n_symbols)[has_bar]
    keep = ["timestamp", "symbol"]
    if panel.has(Feature.OHLC):
        keep += ["open", "high", "low"]
    keep.append("close")
    if panel.has(Feature.VOLUME):
        keep.append("volume")
    frame[keep].to_csv(file, index=False)


def _read(file: Path, source: str) -> pd.DataFrame:
    name = file.name.lower()
    if not name.endswith(SUPPORTED_SUFFIXES):
        raise DataError(
            f"unsupported file type {''.join(file.suffixes) or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}",
            source=source,
        )
    if not file.is_file():
        raise DataError(
            f"file not found; expected a {', '.join(SUPPORTED_SUFFIXES)} file", source=source
        )
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(file)
        # Everything as text, nothing turned into NaN: the validator reports empty cells itself.
        # The header is read as a data line so a row with extra fields is an error instead of
        # silently becoming an index column; a short row gets empty cells, reported by row.
        raw = pd.read_csv(file, header=None, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as err:
        raise DataError("the file is empty; expected a header line", source=source) from err
    except pd.errors.ParserError as err:
        line = re.search(r"line (\d+)", str(err))
        row = int(line.group(1)) - 1 if line else None
        raise DataError(
            f"cannot read the file: {err} (line 1 is the header)", source=source, row=row
        ) from err
    except (UnicodeDecodeError, OSError, ValueError) as err:
        raise DataError(f"cannot read the file: {err}", source=source) from err
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = [str(c).strip() for c in raw.iloc[0]]
    return frame


def _check_symbols(available: list[str], wanted: list[str], source: str) -> list[str]:
    unknown = [s for s in wanted if s not in set(available)]
    if unknown:
        raise DataError(
            f"symbol(s) {', '.join(map(repr, unknown))} not in the file; "
            f"available: {', '.join(available)}",
            source=source,
            column="symbol",
        )
    if len(set(wanted)) != len(wanted):
        raise DataError(f"symbols {wanted} contain duplicates", source=source, column="symbol")
    return wanted


def _to_panel(frame: pd.DataFrame, names: list[str], source: str) -> BarPanel:
    """Pivot a validated long frame to (n_bars, n_symbols) arrays; columns in ``names`` order."""
    stamps = pd.DatetimeIndex(frame["timestamp"])
    times, row_of = np.unique(stamps.asi8, return_inverse=True)
    col_of = pd.Index(names).get_indexer(pd.Index(frame["symbol"]))
    shape = (len(times), len(names))
    arrays: dict[str, np.ndarray] = {}
    for name in OHLCV_COLUMNS:
        arr = np.full(shape, np.nan)
        if name in frame:
            arr[row_of, col_of] = frame[name].to_numpy(dtype=np.float64)
        arrays[name] = arr
    features = {Feature.CLOSE}
    if "open" in frame:
        features.add(Feature.OHLC)
    else:
        for name in ("open", "high", "low"):
            arrays[name] = arrays["close"].copy()
    if "volume" in frame:
        features.add(Feature.VOLUME)
    index = pd.DatetimeIndex(pd.to_datetime(times, unit=stamps.unit, utc=True))
    return BarPanel(
        timestamps=index,
        symbols=tuple(str(n) for n in names),
        open=arrays["open"],
        high=arrays["high"],
        low=arrays["low"],
        close=arrays["close"],
        volume=arrays["volume"],
        features=frozenset(features),
        source=source,
    )
