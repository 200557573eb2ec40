"""Strict validation of long-format OHLCV frames (the documented file schema).

The schema, one row per (symbol, bar)::

    timestamp, symbol, open, high, low, close, volume

- ``timestamp``, ``symbol`` and ``close`` are required.
- ``open``, ``high`` and ``low`` are optional as a group: all three or none (none means a
  closes-only source).
- ``volume`` is optional (absent means the source has no volume feature).
- ``timestamp`` is the bar's close time, ISO 8601 with a UTC offset (``2024-01-02T21:00:00+00:00``
  or ``...Z``), or a timezone-aware datetime column (Parquet). Naive times are refused: a trading
  system must never guess a timezone.
- Prices are positive numbers in the quote currency; volume is a non-negative number of shares.

Every problem raises :class:`~sovereign.errors.DataError` naming the source, the row (1-based data
row as in the file: row 1 is the first line after the header; for an in-memory frame, the 1-based
position) and the column. Checks run in a fixed order, and each reports the first offending row in
file order, so fixing errors one at a time converges. All checks are vectorised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sovereign.errors import DataError

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "close")
OHLC_GROUP: tuple[str, ...] = ("open", "high", "low")
ALLOWED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

_ISO_EXAMPLE = "2024-01-02T21:00:00+00:00"
# A time of day followed by an explicit offset: ``...10:00Z``, ``...10:00:00.5+00:00``, ``-0500``.
# (No ``\s``: it makes pandas fall back from pyarrow to a slow per-row Python regex.)
_OFFSET_RE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)? ?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def validate_frame(frame: pd.DataFrame, *, source: str, gap_tolerance: float | None = 10.0) -> None:
    """Raise :class:`DataError` on the first problem in ``frame``; return None if it is clean.

    ``frame``: long format, one row per bar, rows in file order (see the module docstring).
    ``source``: the file path or source name quoted in errors.
    ``gap_tolerance``: a gap between consecutive timestamps of a symbol larger than this many
    times that symbol's median interval is an error; None disables the check.
    """
    normalize_frame(frame, source=source, gap_tolerance=gap_tolerance)


def normalize_frame(
    frame: pd.DataFrame, *, source: str, gap_tolerance: float | None = 10.0
) -> pd.DataFrame:
    """Validate ``frame`` like :func:`validate_frame` and return it typed.

    Returns a new frame with a RangeIndex, rows in the input order, and only the columns present:
    ``timestamp`` (datetime64, UTC), ``symbol`` (str, whitespace stripped) and float64 price and
    volume columns.
    """
    if gap_tolerance is not None and not gap_tolerance > 0:
        raise ValueError(f"gap_tolerance must be positive or None, got {gap_tolerance!r}")
    columns = _check_columns(frame, source)
    n = len(frame)
    timestamps = _parse_timestamps(frame["timestamp"], source)
    out: dict[str, Any] = {"timestamp": timestamps}
    symbols, values = _parse_values(frame, columns, source)
    out["symbol"] = symbols
    out.update(values)
    _check_prices(values, source)
    result = pd.DataFrame(out, index=pd.RangeIndex(n))
    if n > 1:
        _check_sequence(result, source, gap_tolerance)
    return result


# -- columns -----------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, source: str) -> list[str]:
    present = [str(c) for c in frame.columns]
    allowed = ", ".join(ALLOWED_COLUMNS)
    for col in REQUIRED_COLUMNS:
        if col not in present:
            raise DataError(
                f"missing required column '{col}'; the header must contain {allowed} "
                "(open/high/low together or not at all, volume optional)",
                source=source,
                column=col,
            )
    seen: set[str] = set()
    for col in present:
        if col not in ALLOWED_COLUMNS:
            raise DataError(
                f"unknown column '{col}'; allowed columns are {allowed} (names are lower case)",
                source=source,
                column=col,
            )
        if col in seen:
            raise DataError(
                f"column '{col}' appears twice in the header", source=source, column=col
            )
        seen.add(col)
    has = [c for c in OHLC_GROUP if c in seen]
    if has and len(has) != len(OHLC_GROUP):
        missing = next(c for c in OHLC_GROUP if c not in seen)
        raise DataError(
            f"column '{missing}' is missing but {', '.join(has)} present: open, high and low "
            "come as a group; give all three, or drop them all for a closes-only source",
            source=source,
            column=missing,
        )
    return [c for c in ALLOWED_COLUMNS if c in seen]


# -- cell parsing ------------------------------------------------------------------------------


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True in a boolean array, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _text(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Cells as stripped strings, and a mask of empty/missing cells."""
    missing = col.isna().to_numpy()
    text = col.astype(str).str.strip()
    empty = missing | (text == "").to_numpy()
    return text, empty


def _parse_timestamps(col: pd.Series, source: str) -> pd.Series:
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype):
        row = _first(col.isna().to_numpy())
        if row is not None:
            raise DataError("timestamp is empty", source=source, row=row + 1, column="timestamp")
        if not isinstance(col.dtype, pd.DatetimeTZDtype):
            raise DataError(
                f"timestamp {col.iloc[0]} has no timezone; store timezone-aware UTC times "
                "(add a UTC offset such as +00:00)",
                source=source,
                row=1,
                column="timestamp",
            )
        utc = pd.DatetimeIndex(col).tz_convert("UTC")
        return pd.Series(utc, index=pd.RangeIndex(len(utc)), name="timestamp")
    # Parse each distinct string once: a file of m symbols repeats every timestamp m times.
    # A missing cell has code -1; it counts as unparseable (reported as empty).
    codes, uniques = pd.factorize(col)
    text, _ = _text(pd.Series(uniques))
    parsed = pd.DatetimeIndex(pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce"))
    bad = codes < 0
    if len(uniques):  # code -1 wraps to the last unique here; harmless, it is already bad
        bad |= np.asarray(parsed.isna())[codes]
    row = _first(bad)
    if row is not None:
        cell = "" if codes[row] < 0 else text.iloc[codes[row]]
        raise DataError(
            f"cannot parse timestamp {cell!r}; use ISO 8601 with a UTC offset, such as "
            f"{_ISO_EXAMPLE}"
            if cell
            else "timestamp is empty",
            source=source,
            row=row + 1,
            column="timestamp",
        )
    naive = ~text.str.contains(_OFFSET_RE, regex=True).to_numpy()
    row = _first(naive[codes])
    if row is not None:
        raise DataError(
            f"timestamp {text.iloc[codes[row]]!r} has no timezone; add a UTC offset such as "
            f"+00:00, e.g. {_ISO_EXAMPLE}",
            source=source,
            row=row + 1,
            column="timestamp",
        )
    return pd.Series(parsed[codes], index=pd.RangeIndex(len(codes)), name="timestamp")


def _parse_number(col: pd.Series) -> tuple[np.ndarray, np.ndarray, pd.Series | None]:
    """(float64 values, bad-cell mask, cell text or None if the column was numeric)."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, ~np.isfinite(values), None
    try:  # fast path (pyarrow's parser): every cell is a well-formed number
        values = col.astype("float64[pyarrow]").to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isfinite(values).all():
            return values, np.zeros(len(values), dtype=bool), None
    except (TypeError, ValueError):
        pass  # not every cell is a clean number: the slow path below says which one is not
    text, empty = _text(col)
    values = pd.to_numeric(text.where(~empty, ""), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return values, empty | ~np.isfinite(values), text


def _parse_values(
    frame: pd.DataFrame, columns: list[str], source: str
) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Symbols and numeric columns; raise on the first empty or non-numeric cell in file order."""
    n = len(frame)
    sym_text, sym_empty = _text(frame["symbol"])
    candidates: list[tuple[int, int, str, str]] = []  # (row, column order, column, reason)
    row = _first(sym_empty)
    if row is not None:
        candidates.append((row, 0, "symbol", "symbol is empty"))
    values: dict[str, np.ndarray] = {}
    numeric_cols = [c for c in columns if c not in ("timestamp", "symbol")]
    for order, col in enumerate(numeric_cols, start=1):
        vals, bad, text = _parse_number(frame[col])
        values[col] = vals
        row = _first(bad)
        if row is None:
            continue
        cell = "" if text is None else str(text.iloc[row])
        if text is not None and cell and cell.lower() not in ("nan", "na", "null", "none"):
            reason = f"{col} {cell!r} is not a finite number"
        elif np.isinf(vals[row]):
            reason = f"{col} is infinite"
        else:
            reason = f"{col} is empty or NaN; every present column needs a value in every row"
        candidates.append((row, order, col, reason))
    if candidates:
        row, _, col, reason = min(candidates)
        raise DataError(reason, source=source, row=row + 1, column=col)
    symbols = pd.Series(sym_text.to_numpy(dtype=object), index=pd.RangeIndex(n), dtype=object)
    return symbols, values


# -- bar consistency ---------------------------------------------------------------------------


def _first_in_columns(values: dict[str, np.ndarray], cols: tuple[str, ...], test: Any) -> Any:
    """First (row, column) where ``test(array)`` is True, scanning rows first, then columns."""
    best: tuple[int, int, str] | None = None
    for order, col in enumerate(cols):
        if col not in values:
            continue
        row = _first(test(values[col]))
        if row is not None and (best is None or (row, order) < best[:2]):
            best = (row, order, col)
    return None if best is None else (best[0], best[2])


def _check_prices(values: dict[str, np.ndarray], source: str) -> None:
    hit = _first_in_columns(values, PRICE_COLUMNS, lambda a: a <= 0)
    if hit is not None:
        row, col = hit
        raise DataError(
            f"{col} {float(values[col][row]):g} is not positive; prices must be > 0",
            source=source,
            row=row + 1,
            column=col,
        )
    if "volume" in values:
        row = _first(values["volume"] < 0)
        if row is not None:
            raise DataError(
                f"volume {float(values['volume'][row]):g} is negative; volume must be >= 0",
                source=source,
                row=row + 1,
                column="volume",
            )
    if "high" not in values:
        return
    high, low = values["high"], values["low"]
    row = _first(high < low)
    if row is not None:
        raise DataError(
            f"high {float(high[row]):g} is below low {float(low[row]):g}; swap or correct the bar",
            source=source,
            row=row + 1,
            column="high",
        )
    outside = _first_in_columns(values, ("open", "close"), lambda a: (a < low) | (a > high))
    if outside is not None:
        row, col = outside
        raise DataError(
            f"{col} {float(values[col][row]):g} is outside the bar's range "
            f"[low {float(low[row]):g}, high {float(high[row]):g}]",
            source=source,
            row=row + 1,
            column=col,
        )


# -- per-symbol time sequence ------------------------------------------------------------------


def _check_sequence(frame: pd.DataFrame, source: str, gap_tolerance: float | None) -> None:
    stamps = pd.DatetimeIndex(frame["timestamp"])
    ticks = stamps.asi8
    codes, uniques = pd.factorize(frame["symbol"], sort=False)
    # Stable sort by symbol keeps file order within each symbol.
    order = np.argsort(codes, kind="stable")
    same = codes[order][1:] == codes[order][:-1]
    step = ticks[order][1:] - ticks[order][:-1]
    later, earlier = order[1:], order[:-1]

    def first_pair(bad: np.ndarray) -> tuple[int, int] | None:
        rows = later[same & bad]
        if rows.size == 0:
            return None
        k = int(np.argmin(rows))
        return int(rows[k]), int(earlier[same & bad][k])

    keys = pd.DataFrame({"symbol": codes, "tick": ticks})
    dup = _first(keys.duplicated(keep="first").to_numpy())
    if dup is not None:
        row = dup
        prev = int(np.argmax((codes == codes[row]) & (ticks == ticks[row])))
        raise DataError(
            f"duplicate bar for symbol {frame['symbol'].iloc[row]!r} at {stamps[row].isoformat()} "
            f"(first at row {prev + 1}); keep one bar per symbol and timestamp",
            source=source,
            row=row + 1,
            column="timestamp",
        )
    back = first_pair(step < 0)
    if back is not None:
        row, prev = back
        raise DataError(
            f"timestamp {stamps[row].isoformat()} of symbol {frame['symbol'].iloc[row]!r} is "
            f"earlier than its previous bar at row {prev + 1} ({stamps[prev].isoformat()}); "
            "sort each symbol's bars by time",
            source=source,
            row=row + 1,
            column="timestamp",
        )
    if gap_tolerance is None or not same.any():
        return
    group = codes[order][1:][same]
    medians = pd.Series(step[same]).groupby(group).median()
    limit = np.full(len(uniques), np.inf)
    limit[medians.index.to_numpy()] = medians.to_numpy() * gap_tolerance
    bad = np.zeros_like(same)
    bad[same] = step[same] > limit[group]
    gap = first_pair(bad)
    if gap is not None:
        row, prev = gap
        sym = frame["symbol"].iloc[row]
        median = pd.Timedelta(int(medians[codes[row]]), unit=stamps.unit)
        raise DataError(
            f"gap of {stamps[row] - stamps[prev]} in symbol {sym!r} after row {prev + 1} "
            f"exceeds {gap_tolerance:g} x its median interval {median}; fill the missing bars "
            "or raise gap_tolerance (None disables the check)",
            source=source,
            row=row + 1,
            column="timestamp",
        )
