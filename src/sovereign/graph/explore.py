"""Parameter exploration: the offline proposer's second source of ideas.

The weakness finder only speaks when a loss cluster is statistically significant, which on a few
hundred trades is rare. Between such findings the offline proposer still tries one bounded idea
per cycle: a step of one tunable parameter of the strategy that earned least over the window
studied. Exploration is cheap to propose and expensive to pass: each idea goes through the
validator (bounds, maximum step, blacklist of a parameter that keeps failing) and the backtest
gate, whose deflated Sharpe ratio counts every trial made so far.

Deterministic: the parameter and direction rotate with ``attempt`` (how many exploration ideas
came before), in sorted parameter order, up first then down.
"""

from __future__ import annotations

from collections.abc import Mapping

from sovereign.rules.config import ParamSpec
from sovereign.rules.proposals import ProposalSource, TuneParameter

STEP_FRACTION = 0.1
"""An exploration step, as a fraction of the parameter's declared range (the constitution's
maximum step per change is 0.25 by default)."""


def explore(
    *,
    specs: Mapping[str, Mapping[str, ParamSpec]],
    params: Mapping[str, Mapping[str, float]],
    pnl_by_strategy: Mapping[str, float],
    attempt: int,
    step_fraction: float = STEP_FRACTION,
) -> TuneParameter | None:
    """One parameter step for the strategy with the lowest P&L, or None when nothing can move.

    ``specs``: declared bounds per strategy. ``params``: the values in force. ``pnl_by_strategy``:
    realised P&L (money) over the studied window; strategies without trades are not explored.
    """
    ranked = sorted((pnl, name) for name, pnl in pnl_by_strategy.items() if specs.get(name))
    if not ranked:
        return None
    pnl, strategy = ranked[0]
    names = sorted(specs[strategy])
    for k in range(2 * len(names)):
        slot = attempt + k
        name = names[slot % len(names)]
        direction = 1.0 if (slot // len(names)) % 2 == 0 else -1.0
        spec = specs[strategy][name]
        current = float(params.get(strategy, {}).get(name, spec.default))
        value = _step(spec, current, direction * step_fraction)
        if value != current:
            return TuneParameter(
                strategy=strategy,
                parameter=name,
                value=value,
                source=ProposalSource.HEURISTIC,
                rationale=(
                    f"Exploration: no significant weakness to act on; {strategy} earned least "
                    f"over the studied window ({pnl:+,.0f}). Trying {name} {current:g} -> "
                    f"{value:g} ({'up' if direction > 0 else 'down'} "
                    f"{step_fraction:.0%} of its range)."
                ),
                expected_effect=(
                    "Unknown in advance: the gate decides on out-of-sample folds, regimes and "
                    "stress scenarios."
                ),
            )
    return None


def _step(spec: ParamSpec, current: float, fraction: float) -> float:
    value = current + fraction * (spec.high - spec.low)
    value = min(max(value, spec.low), spec.high)
    if spec.integer:
        value = float(round(value))
        if value == current:  # a small range: move by one whole unit
            value = min(max(current + (1 if fraction > 0 else -1), spec.low), spec.high)
    return round(value, 6)


__all__ = ["STEP_FRACTION", "explore"]
