"""Timing helpers: medians of repeated runs, printed in one format."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

# hmmlearn logs when one seeded restart of the regime engine stops short of its tolerance; the
# engine keeps the best restart, so this is noise in the benchmark output.
logging.getLogger("hmmlearn").setLevel(logging.ERROR)


def measure(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def report(
    name: str, times: list[float], *, unit: str = "s", goal: float | None = None, scale: float = 1.0
) -> float:
    """Print ``name: median (min..max) [goal]`` and return the median in ``unit``."""
    vals = [t * scale for t in times]
    med = statistics.median(vals)
    verdict = ""
    if goal is not None:
        verdict = f"  goal <= {goal:g} {unit}: {'met' if med <= goal else 'NOT met'}"
    print(
        f"{name:<58} median {med:9.3f} {unit}  (min {min(vals):.3f}, max {max(vals):.3f}, n={len(vals)}){verdict}"
    )
    return med
