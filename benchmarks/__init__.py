"""Reproducible speed measurements. `python -m benchmarks` runs them all; each module runs alone
with `python -m benchmarks.<name>`. Every figure is the median of several runs, printed."""
