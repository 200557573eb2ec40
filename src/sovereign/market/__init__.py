"""Market data: bars and panels, file loading and validation, bundled and synthetic data, clocks."""

from sovereign.market.bars import OHLCV_COLUMNS, Bar, BarPanel, Feature
from sovereign.market.clock import Clock, SimulatedClock, TimeWarp, WallClock
from sovereign.market.files import SUPPORTED_SUFFIXES, load_file, write_csv
from sovereign.market.sources import (
    SAMPLES,
    Repairs,
    SampleInfo,
    available_samples,
    load_sample,
    sample_repairs,
)
from sovereign.market.synthetic import (
    DEFAULT_REGIMES,
    RegimeSpec,
    SyntheticMarket,
    generate,
    random_walk,
    with_flash_crash,
    with_volatility,
)
from sovereign.market.validation import ALLOWED_COLUMNS, normalize_frame, validate_frame

__all__ = [
    "ALLOWED_COLUMNS",
    "DEFAULT_REGIMES",
    "OHLCV_COLUMNS",
    "SAMPLES",
    "SUPPORTED_SUFFIXES",
    "Bar",
    "BarPanel",
    "Clock",
    "Feature",
    "RegimeSpec",
    "Repairs",
    "SampleInfo",
    "SimulatedClock",
    "SyntheticMarket",
    "TimeWarp",
    "WallClock",
    "available_samples",
    "generate",
    "load_file",
    "load_sample",
    "normalize_frame",
    "random_walk",
    "sample_repairs",
    "validate_frame",
    "with_flash_crash",
    "with_volatility",
    "write_csv",
]
