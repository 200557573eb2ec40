"""A disk cache for the walk-forward regime path and the engines' overlay of a panel.

Fitting the regime HMMs (and the overlay's GARCH and stress models) over decades of bars is the
slowest part of preparing a replay, and it is deterministic: the same bars, settings and seed
give the same path. The cache key is a
SHA-256 over exactly those inputs and the package version, so a changed input or a new release
recomputes. A corrupt or unreadable cache file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sovereign.engines.indicators import compute_features
from sovereign.market.bars import BarPanel
from sovereign.rules.context import Regime
from sovereign.trading.backtest import Prepared, RegimeConfig, prepare
from sovereign.trading.loop import RegimeSeries
from sovereign.trading.overlay import Overlay, OverlayConfig

log = logging.getLogger(__name__)
CACHE_VERSION = "regime-overlay-v2"


def panel_key(
    panel: BarPanel, regime: RegimeConfig, seed: int, overlay: OverlayConfig | None = None
) -> str:
    h = hashlib.sha256()
    h.update(CACHE_VERSION.encode())
    h.update(repr(sorted(asdict(regime).items())).encode())
    h.update(repr(overlay or OverlayConfig()).encode())
    h.update(str(seed).encode())
    h.update("|".join(panel.symbols).encode())
    h.update(panel.timestamps.asi8.tobytes())
    for values in (panel.close, panel.high, panel.low, panel.volume):
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()[:32]


def prepare_cached(
    panel: BarPanel,
    regime: RegimeConfig,
    *,
    seed: int,
    cache_dir: Path | None,
    overlay: OverlayConfig | None = None,
) -> Prepared:
    """:func:`sovereign.trading.backtest.prepare` with the regime path and the overlay cached
    under ``cache_dir`` (features are recomputed: they are cheap)."""
    ocfg = overlay or OverlayConfig()
    if cache_dir is None:
        return prepare(panel, regime, seed=seed, overlay=ocfg)
    path = cache_dir / f"{panel_key(panel, regime, seed, ocfg)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                regimes = np.array([Regime(str(r)) for r in data["regime"]], dtype=object)
                confidence = data["confidence"].astype(float)
                cached = Overlay.from_arrays(dict(data), ocfg)
            if regimes.shape == (panel.n_bars,) and cached.n_bars == panel.n_bars:
                return Prepared(
                    features=compute_features(panel),
                    regimes=RegimeSeries(regime=regimes, confidence=confidence),
                    overlay=cached,
                )
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable regime cache %s: %s", path, err)
    prepared = prepare(panel, regime, seed=seed, overlay=ocfg)
    assert prepared.overlay is not None  # noqa: S101 - prepare always computes one
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            arrays: dict[str, Any] = {
                "regime": np.array([r.value for r in prepared.regimes.regime]),
                "confidence": prepared.regimes.confidence,
                **prepared.overlay.to_arrays(),
            }
            np.savez(fh, **arrays)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return prepared
