"""What the backtest gate returns: the verdict, every failing reason with a stable code, and the
evidence (metrics per fold, regime, stability bucket and stress scenario; the significance
tests; trade activity; the look-ahead guard). JSON-safe through :meth:`GateReport.to_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

GATE_NOT_APPLICABLE = "GATE_NOT_APPLICABLE"
GATE_CONSTITUTION_BREACH = "GATE_CONSTITUTION_BREACH"
GATE_NOT_SIGNIFICANT = "GATE_NOT_SIGNIFICANT"
GATE_SLICE_DEGRADED = "GATE_SLICE_DEGRADED"
GATE_TOO_FEW_TRADES = "GATE_TOO_FEW_TRADES"
GATE_TURNOVER = "GATE_TURNOVER"
GATE_LOOKAHEAD = "GATE_LOOKAHEAD"

GATE_CODES: tuple[str, ...] = (
    GATE_NOT_APPLICABLE,
    GATE_CONSTITUTION_BREACH,
    GATE_NOT_SIGNIFICANT,
    GATE_SLICE_DEGRADED,
    GATE_TOO_FEW_TRADES,
    GATE_TURNOVER,
    GATE_LOOKAHEAD,
)


def json_safe(value: Any) -> Any:
    """``value`` with floats rounded to 6 decimals and NaN/inf turned into None, recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    raise TypeError(f"not JSON-safe: {type(value).__name__}")


@dataclass(frozen=True, kw_only=True, slots=True)
class GateReason:
    """One reason to reject: a stable ``code`` and a sentence for a person."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class SliceResult:
    """Baseline vs candidate on one slice of the evaluation (a fold, a regime, a stability
    bucket or a stress scenario).

    ``baseline``/``candidate``: ``sharpe`` (annualised), ``total_return`` (compounded over the
    slice's bars) and, for contiguous slices, ``max_drawdown``; ``delta`` = candidate - baseline.
    ``judged``: the slice had enough bars to be judged. ``covered``: False for a stress window
    the data does not hold (then nothing was run).
    """

    name: str
    kind: str
    bars: int
    baseline: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    delta: dict[str, float] = field(default_factory=dict)
    judged: bool = True
    degraded: bool = False
    covered: bool = True
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "bars": self.bars,
            "covered": self.covered,
            "judged": self.judged,
            "degraded": self.degraded,
            "baseline": json_safe(self.baseline),
            "candidate": json_safe(self.candidate),
            "delta": json_safe(self.delta),
            "note": self.note,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Significance:
    """Both tests of "better beyond noise" on the concatenated out-of-sample fold returns.

    ``rule``: which must pass ("either", "ci", "dsr" or "both"). ``sharpe_*``: annualised.
    The CI is of SR(candidate) - SR(baseline) at ``ci_confidence`` (already adjusted for
    ``trials``); the DSR is of the candidate's excess return (candidate - baseline per bar),
    against the best of ``trials`` skill-less tries.
    """

    rule: str
    passed: bool
    sharpe_baseline: float
    sharpe_candidate: float
    sharpe_difference: float
    ci_lower: float
    ci_upper: float
    ci_confidence: float
    ci_passed: bool
    dsr: float
    dsr_threshold: float
    dsr_passed: bool
    excess_sharpe: float  # per bar, the DSR's input
    excess_benchmark: float  # per bar, the expected best of `trials` skill-less tries
    trials: int
    bars: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "bars": self.bars,
            "trials": self.trials,
            "sharpe": json_safe(
                {
                    "baseline": self.sharpe_baseline,
                    "candidate": self.sharpe_candidate,
                    "difference": self.sharpe_difference,
                }
            ),
            "ci": json_safe(
                {
                    "lower": self.ci_lower,
                    "upper": self.ci_upper,
                    "confidence": self.ci_confidence,
                    "passed": self.ci_passed,
                }
            ),
            "dsr": json_safe(
                {
                    "value": self.dsr,
                    "threshold": self.dsr_threshold,
                    "passed": self.dsr_passed,
                    "excess_sharpe_per_bar": self.excess_sharpe,
                    "benchmark_per_bar": self.excess_benchmark,
                }
            ),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Activity:
    """Trading activity over the out-of-sample folds. ``affected_trades``: round trips present in
    one run and not identically in the other, matched by (strategy, symbol, entry time).
    ``turnover``: money traded per year / mean equity. ``max_orders_per_day``: the candidate's
    busiest day."""

    trades_baseline: int
    trades_candidate: int
    affected_trades: int
    turnover_baseline: float
    turnover_candidate: float
    orders_baseline: int
    orders_candidate: int
    max_orders_per_day: int
    max_orders_per_day_limit: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "trades": {
                    "baseline": self.trades_baseline,
                    "candidate": self.trades_candidate,
                    "affected": self.affected_trades,
                },
                "turnover": {
                    "baseline": self.turnover_baseline,
                    "candidate": self.turnover_candidate,
                },
                "orders": {
                    "baseline": self.orders_baseline,
                    "candidate": self.orders_candidate,
                    "max_per_day": self.max_orders_per_day,
                    "max_per_day_limit": self.max_orders_per_day_limit,
                },
            }
        )
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class LookaheadCut:
    """One truncated re-run: data cut after bar ``timestamp`` (ISO) of fold ``fold``."""

    fold: str
    timestamp: str
    identical: bool
    events_compared: int
    difference: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "timestamp": self.timestamp,
            "identical": self.identical,
            "events_compared": self.events_compared,
            "difference": self.difference,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class GateReport:
    """The gate's verdict on one proposal. See :func:`sovereign.trading.gate.evaluate`.

    ``expected_max_drawdown``: the candidate's largest backtested drawdown over the
    out-of-sample folds (each fold a fresh account), for the canary. ``elapsed_s``: wall time
    of the evaluation, kept out of :meth:`to_json` so the JSON is a pure function of the inputs.
    """

    accepted: bool
    reasons: tuple[GateReason, ...]
    proposal_id: str
    family: str
    kind: str
    baseline_ruleset_id: str
    candidate_ruleset_id: str | None
    seed: int
    trials: int
    window: dict[str, Any] = field(default_factory=dict)
    folds: tuple[SliceResult, ...] = ()
    regimes: tuple[SliceResult, ...] = ()
    stability: tuple[SliceResult, ...] = ()
    scenarios: tuple[SliceResult, ...] = ()
    significance: Significance | None = None
    activity: Activity | None = None
    lookahead: tuple[LookaheadCut, ...] = ()
    lookahead_passed: bool | None = None
    breaches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    expected_max_drawdown: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.code for r in self.reasons))

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reasons": [r.to_json() for r in self.reasons],
            "codes": list(self.codes),
            "proposal_id": self.proposal_id,
            "family": self.family,
            "kind": self.kind,
            "baseline_ruleset_id": self.baseline_ruleset_id,
            "candidate_ruleset_id": self.candidate_ruleset_id,
            "seed": self.seed,
            "trials": self.trials,
            "window": json_safe(self.window),
            "folds": [s.to_json() for s in self.folds],
            "regimes": [s.to_json() for s in self.regimes],
            "stability": [s.to_json() for s in self.stability],
            "scenarios": [s.to_json() for s in self.scenarios],
            "significance": None if self.significance is None else self.significance.to_json(),
            "activity": None if self.activity is None else self.activity.to_json(),
            "lookahead": {
                "passed": self.lookahead_passed,
                "cuts": [c.to_json() for c in self.lookahead],
            },
            "breaches": {k: list(v) for k, v in self.breaches.items()},
            "expected_max_drawdown": json_safe(self.expected_max_drawdown),
            "config": json_safe(self.config),
        }


__all__ = [
    "GATE_CODES",
    "GATE_CONSTITUTION_BREACH",
    "GATE_LOOKAHEAD",
    "GATE_NOT_APPLICABLE",
    "GATE_NOT_SIGNIFICANT",
    "GATE_SLICE_DEGRADED",
    "GATE_TOO_FEW_TRADES",
    "GATE_TURNOVER",
    "Activity",
    "GateReason",
    "GateReport",
    "LookaheadCut",
    "Significance",
    "SliceResult",
    "json_safe",
]
