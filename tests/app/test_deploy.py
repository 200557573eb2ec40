"""deploy / reject / rollback, the canary and the auto-deploy freeze, on a real SQLite file (and
once on PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from sovereign.app.context import App
from sovereign.app.deploy import (
    CANARY,
    autodeploy_frozen,
    canary_breached,
    canary_check,
    clear_autodeploy_freeze,
    deploy,
    freeze_autodeploy,
    reject,
    rollback,
)
from sovereign.constitution.verdict import Violation
from sovereign.errors import DataError, IntegrityError
from sovereign.memory import DeploymentStatus, NotFound, ProposalHistory, VerdictStage
from sovereign.rules import (
    AddRule,
    AtrAbove,
    ConfidenceBelow,
    ModifyConstitution,
    ModifyRule,
    ProposalSource,
    Regime,
    RegimeIs,
    RetireRule,
    Rule,
    RuleSet,
    ScalePosition,
    SkipTrade,
    TightenStop,
    TuneParameter,
)
from sovereign.settings import Settings
from tests.memory.test_postgres import pg_admin_url, pg_engine  # noqa: F401 - fixtures

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
R1 = Rule(name="r1", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="too volatile"))
R2 = Rule(name="r2", when=ConfidenceBelow(value=0.45), then=TightenStop(atr_mult=1.5))
ADD_R1 = AddRule(rule=R1, rationale="entries lose in volatile regimes", source=ProposalSource.LLM)
ADD_R2 = AddRule(rule=R2, rationale="weak signals need tight stops", source="heuristic")
TUNE = TuneParameter(
    strategy="momentum", parameter="lookback", value=40.0, rationale="faster", source="llm"
)
VIOLATION = {"code": "GATE_NOT_SIGNIFICANT", "field": "", "message": "within noise"}


def report(proposal_id: str | None = None, mdd: Any = 0.06, **extra: Any) -> dict[str, Any]:
    """A gate report as the gate's to_json() gives it (the fields deploy reads, plus some)."""
    out: dict[str, Any] = {"accepted": True, "reasons": [], "expected_max_drawdown": mdd}
    if proposal_id is not None:
        out["proposal_id"] = proposal_id
    return out | extra


@pytest.fixture
def app(home: Path) -> Iterator[App]:
    a = App.open(Settings())
    yield a
    a.dispose()


def _audit_kinds(app: App) -> list[str]:
    return [e.kind for e in app.audit.entries()]


def _counts(app: App) -> tuple[int, int, int, int]:
    with app.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()  # noqa: S608
            for t in ("ruleset_versions", "proposals", "deployments", "audit_log")
        )


# --- deploy -----------------------------------------------------------------------------------


def test_first_deploy_starts_from_the_empty_rule_set(app: App) -> None:
    assert app.rules.active() is None
    record = deploy(app, ADD_R1, report(ADD_R1.id), at=T0, cycle_id="c-1", baseline_equity=1e5)
    assert (record.from_version, record.to_version) == (1, 2)
    assert app.rules.version(1) == RuleSet()
    assert app.rules.active() == (2, RuleSet(rules=(R1,)))
    assert record.ruleset_id == RuleSet(rules=(R1,)).id
    assert record.status is DeploymentStatus.ACTIVE
    assert (record.expected_max_drawdown, record.baseline_equity) == (0.06, 1e5)
    assert record.deployed_at == T0
    [verdict] = app.proposals.verdicts(ADD_R1.id)
    assert (verdict.stage, verdict.accepted, verdict.cycle_id) == (VerdictStage.DEPLOY, True, "c-1")
    assert verdict.gate_report == report(ADD_R1.id)
    [entry] = app.audit.entries(kind="proposal.deployed")
    assert entry.payload["to_version"] == 2
    assert entry.payload["proposal_id"] == ADD_R1.id
    [hist] = app.proposals.history()
    assert isinstance(hist, ProposalHistory)
    assert hist.deployment == record


def test_deploy_is_idempotent_by_proposal(app: App) -> None:
    first = deploy(app, ADD_R1, report(), at=T0, cycle_id="c-1")
    before = _counts(app)
    again = deploy(app, ADD_R1, report(), at=T0 + HOUR, cycle_id="c-1")
    assert again == first
    assert _counts(app) == before
    assert len(app.proposals.verdicts(ADD_R1.id)) == 1
    assert app.proposals.deployment_times(T0) == [T0]


def test_a_second_deployment_supersedes_the_first(app: App) -> None:
    a = deploy(app, ADD_R1, report(), at=T0)
    b = deploy(app, TUNE, report(mdd=0.07), at=T0 + HOUR)
    assert b.from_version == a.to_version
    _, active = app.rules.active() or (0, RuleSet())
    assert active == RuleSet(rules=(R1,)).with_param("momentum", "lookback", 40.0)
    assert [d.id for d in app.proposals.active_deployments()] == [b.id]
    assert app.proposals.deployment(ADD_R1.id).status is DeploymentStatus.SUPERSEDED  # type: ignore[union-attr]
    assert app.rules.versions()[-1].source == "llm"


@pytest.mark.parametrize(
    ("proposal", "gate", "match"),
    [
        (ADD_R1, report(accepted=False), "gate rejected"),
        (ADD_R1, report("p-someoneelse"), "report is for p-someoneelse"),
        (ADD_R1, {"accepted": True}, "expected_max_drawdown"),
        (ADD_R1, report(mdd=float("nan")), "expected_max_drawdown"),
        (ADD_R1, report(mdd=1.5), "expected_max_drawdown"),
        (ADD_R1, report(mdd=True), "expected_max_drawdown"),
        (RetireRule(rule_id=R2.id, rationale="x", source="llm"), report(), "not in the active"),
        (
            ModifyConstitution(field="max_drawdown", value=0.5, rationale="x", source="llm"),
            report(),
            "constitution",
        ),
    ],
    ids=["rejected", "other-proposal", "no-mdd", "nan-mdd", "mdd>1", "bool-mdd", "retire", "const"],
)
def test_deploy_refuses_and_writes_nothing(
    app: App, proposal: Any, gate: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        deploy(app, proposal, gate, at=T0)
    assert _counts(app) == (0, 0, 0, 0)
    assert app.rules.active() is None


def test_deploy_is_one_transaction(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(app, ADD_R1, report(), at=T0)
    before = (_counts(app), app.rules.active(), app.proposals.active_deployments())

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("power cut while auditing")

    monkeypatch.setattr(app.audit, "append", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        deploy(app, ADD_R2, report(), at=T0 + HOUR)
    monkeypatch.undo()
    assert (_counts(app), app.rules.active(), app.proposals.active_deployments()) == before
    assert app.proposals.deployment(ADD_R2.id) is None
    # The crash left nothing half-done, so the same deployment succeeds afterwards.
    assert deploy(app, ADD_R2, report(), at=T0 + HOUR).to_version == 3
    assert app.audit.verify().ok


# --- reject -----------------------------------------------------------------------------------


def test_reject_records_proposal_verdict_and_audit_once(app: App) -> None:
    gate = report(TUNE.id, accepted=False, reasons=[["GATE_NOT_SIGNIFICANT", "noise"]])
    v = reject(app, TUNE, stage="gate", violations=[VIOLATION], gate_report_json=gate, at=T0,
               cycle_id="c-1")  # fmt: skip
    assert (v.accepted, v.stage, v.codes) == (False, VerdictStage.GATE, ("GATE_NOT_SIGNIFICANT",))
    assert v.gate_report == gate
    again = reject(app, TUNE, stage="gate", violations=[VIOLATION], at=T0 + HOUR, cycle_id="c-1")
    assert again == v
    assert _audit_kinds(app) == ["proposal.rejected"]
    assert app.proposals.rejection_times(T0) == {TUNE.family: [T0]}
    assert app.rules.active() is None  # a rejection never touches the rules

    raw = reject(
        app,
        "I think we should YOLO",
        stage="validate",
        violations=[Violation(code="LLM_UNPARSEABLE", field="", message="not a proposal")],
        at=T0,
        cycle_id="c-1",
        source="llm",
    )
    assert raw.proposal_id.startswith("p-raw-")
    assert app.audit.entries()[-1].payload["kind"] == "unparseable"
    with pytest.raises(ValueError, match="at least one violation"):
        reject(app, ADD_R1, stage="validate", violations=[], at=T0)


# --- rollback ---------------------------------------------------------------------------------


def test_rollback_restores_the_exact_version(app: App) -> None:
    a = deploy(app, ADD_R1, report(), at=T0)
    b = deploy(app, ADD_R2, report(), at=T0 + HOUR)
    c = deploy(app, TUNE, report(), at=T0 + 2 * HOUR)
    wanted = app.rules.versions()[a.to_version - 1]
    back = rollback(app, a.to_version, by="ana", reason="too many stops", at=T0 + 3 * HOUR)
    active = app.rules.active()
    assert active is not None
    assert active[0] == a.to_version
    assert active[1].id == wanted.ruleset_id == back.ruleset_id == RuleSet(rules=(R1,)).id
    assert (back.from_version, back.to_version, back.by, back.deployment_id) == (
        c.to_version, a.to_version, "ana", c.id,
    )  # fmt: skip
    status = {d.id: d.status for d in app.proposals.deployments()}
    assert status == {
        a.id: DeploymentStatus.SUPERSEDED,
        b.id: DeploymentStatus.ROLLED_BACK,
        c.id: DeploymentStatus.ROLLED_BACK,
    }
    # A rollback is not a deployment: the daily change budget does not see it.
    assert app.proposals.deployment_times(T0) == [T0, T0 + HOUR, T0 + 2 * HOUR]
    [entry] = app.audit.entries(kind="rules.rolled_back")
    assert entry.payload["to_version"] == a.to_version
    assert entry.payload["by"] == "ana"
    # Back to the very beginning: the empty rule set saved by the first deployment.
    rollback(app, a.from_version or 0, by="ana", reason="start over", at=T0 + 4 * HOUR)
    assert app.rules.active() == (1, RuleSet())


def test_rollback_refusals_change_nothing(app: App) -> None:
    deploy(app, ADD_R1, report(), at=T0)
    deploy(app, ADD_R2, report(), at=T0 + HOUR)
    before = (_counts(app), app.rules.active())
    with pytest.raises(NotFound, match=r"no rule set version 9; existing versions: 1, 2, 3"):
        rollback(app, 9, by="ana", reason="x", at=T0)
    with pytest.raises(ValueError, match="already active"):
        rollback(app, 3, by="ana", reason="x", at=T0)
    with pytest.raises(ValueError, match="name of the person"):
        rollback(app, 2, by="  ", reason="x", at=T0)
    with app.engine.begin() as conn:  # someone edits version 2's rule list behind our back
        conn.exec_driver_sql("UPDATE ruleset_versions SET rule_ids = '[]' WHERE version = 2")
    with pytest.raises(IntegrityError, match="hashes to"):
        rollback(app, 2, by="ana", reason="x", at=T0)
    assert (_counts(app), app.rules.active()) == before
    assert app.proposals.rollbacks() == []


def test_rollback_with_no_versions_lists_none(app: App) -> None:
    with pytest.raises(NotFound, match="existing versions: none yet"):
        rollback(app, 1, by="ana", reason="x", at=T0)


# --- property: rollback(deploy(x)) restores the previous rule set exactly ---------------------

_conditions = st.one_of(
    st.builds(RegimeIs, regime=st.sampled_from(list(Regime))),
    st.builds(ConfidenceBelow, value=st.floats(0, 1)),
    st.builds(AtrAbove, pct=st.floats(0.01, 50)),
)
_actions = st.one_of(
    st.builds(SkipTrade, reason=st.text(min_size=1, max_size=20)),
    st.builds(ScalePosition, factor=st.floats(0.01, 1)),
    st.builds(TightenStop, atr_mult=st.floats(0.1, 5)),
)
_rules = st.builds(
    Rule,
    name=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    strategy=st.sampled_from([None, "momentum", "regime_entry"]),
    when=_conditions,
    then=_actions,
)


def test_property_rollback_of_deploy_restores_the_previous_rule_set(app: App) -> None:
    counter = itertools.count()
    clock = {"t": T0}

    def tick() -> datetime:
        clock["t"] += timedelta(minutes=1)
        return clock["t"]

    def rationale() -> str:
        return f"example {next(counter)}"  # every proposal unique: deploy is idempotent by id

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        setup=st.lists(_rules, max_size=2),
        kind=st.sampled_from(["add", "tune", "retire", "modify"]),
        rule=_rules,
        pick=st.integers(0, 1_000),
        tune=st.tuples(
            st.sampled_from(["momentum", "regime_entry"]),
            st.sampled_from(["lookback", "atr_mult", "threshold"]),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
    )
    def check(
        setup: list[Rule], kind: str, rule: Rule, pick: int, tune: tuple[str, str, float]
    ) -> None:
        # Draws never depend on the database (hypothesis replays them); the state does.
        for r in setup:
            deploy(app, AddRule(rule=r, rationale=rationale(), source="llm"), report(), at=tick())
        active = app.rules.active()
        before = RuleSet() if active is None else active[1]
        proposal: Any = AddRule(rule=rule, rationale=rationale(), source="llm")
        if kind == "tune":
            strategy, parameter, value = tune
            proposal = TuneParameter(
                strategy=strategy,
                parameter=parameter,
                value=value,
                rationale=rationale(),
                source="heuristic",
            )
        elif kind in ("retire", "modify") and before.rules:
            target = before.rules[pick % len(before.rules)].id
            proposal = (
                RetireRule(rule_id=target, rationale=rationale(), source="llm")
                if kind == "retire"
                else ModifyRule(rule_id=target, rule=rule, rationale=rationale(), source="llm")
            )
        record = deploy(app, proposal, report(), at=tick())
        after = app.rules.active()
        assert after is not None and after[1].id == record.ruleset_id
        assert record.from_version is not None
        back = rollback(app, record.from_version, by="prop", reason="undo", at=tick())
        restored = app.rules.active()
        assert restored is not None
        assert restored[1].id == before.id == back.ruleset_id  # rollback(deploy(x)) == x
        assert restored[1] == before
        assert app.proposals.deployment(proposal.id).status is DeploymentStatus.ROLLED_BACK  # type: ignore[union-attr]

    check()
    assert app.audit.verify().ok


# --- the canary -------------------------------------------------------------------------------


def test_canary_breached_golden_numbers() -> None:
    # Peak 110, trough 99: drawdown 1 - 99/110 = 0.1 exactly.
    curve = [100.0, 110.0, 99.0, 104.0]
    assert canary_breached(curve, 0.05, 0.04) == (True, pytest.approx(0.1))
    assert canary_breached(curve, 0.05, 0.05)[0] is False  # must EXCEED expected + margin
    # With the equity at deployment (120) as the first peak: 1 - 99/120 = 0.175.
    assert canary_breached(curve, 0.1, 0.05, start_equity=120.0) == (True, pytest.approx(0.175))
    assert canary_breached([], 0.0, 0.0) == (False, 0.0)
    assert canary_breached([100.0, 101.0, 102.0], 0.0, 0.0) == (False, 0.0)
    stamps = pd.date_range("2024-01-03", periods=4, freq="D", tz="UTC")
    assert canary_breached(pd.Series(curve, index=stamps), 0.05, 0.04)[0] is True
    assert canary_breached(list(zip(stamps, curve, strict=True)), 0.05, 0.04)[0] is True


@pytest.mark.parametrize(
    ("equity", "expected", "margin", "error"),
    [
        ([100.0, float("nan")], 0.1, 0.0, DataError),
        ([100.0, -5.0], 0.1, 0.0, DataError),
        ([100.0], -0.1, 0.0, ValueError),
        ([100.0], 0.1, float("inf"), ValueError),
        (pd.Series([1.0], index=pd.date_range("2024-01-03", periods=1)), 0.1, 0.0, ValueError),
        ([(datetime(2024, 1, 3), 100.0)], 0.1, 0.0, ValueError),  # noqa: DTZ001 - naive on purpose
    ],
    ids=["nan", "negative", "neg-expected", "inf-margin", "naive-series", "naive-pair"],
)
def test_canary_breached_refuses_bad_input(
    equity: Any, expected: float, margin: float, error: type[Exception]
) -> None:
    with pytest.raises(error):
        canary_breached(equity, expected, margin)


def _equity(start: datetime, values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"))


def test_canary_rolls_back_on_a_breach_and_not_otherwise(app: App) -> None:
    base = deploy(app, ADD_R1, report(), at=T0)
    dep = deploy(app, ADD_R2, report(mdd=0.05), at=T0 + HOUR, baseline_equity=100_000.0)
    # A crash BEFORE the deployment does not count; 4% after it is within 5% + 2% margin.
    before = _equity(T0 - timedelta(days=3), [100_000.0, 50_000.0, 100_000.0])
    calm = _equity(T0 + 2 * HOUR, [101_000.0, 98_000.0, 96_960.0])  # 1 - 96,960/101,000 = 4%
    assert (
        canary_check(app, equity=pd.concat([before, calm]), margin=0.02, at=T0 + 3 * HOUR) is None
    )
    assert app.rules.active_version() == dep.to_version
    assert app.proposals.rollbacks() == []

    # 10% below the equity at deployment: 10% > 5% + 2%.
    bad = _equity(T0 + 2 * HOUR, [99_000.0, 95_000.0, 90_000.0])
    back = canary_check(app, equity=bad, margin=0.02, at=T0 + 4 * HOUR)
    assert back is not None
    assert (back.by, back.from_version, back.to_version) == (
        CANARY,
        dep.to_version,
        base.to_version,
    )
    assert "10.00%" in back.reason and "5.00%" in back.reason and "2.00%" in back.reason
    assert app.rules.active() == (base.to_version, RuleSet(rules=(R1,)))
    assert app.proposals.deployment(ADD_R2.id).status is DeploymentStatus.ROLLED_BACK  # type: ignore[union-attr]
    # The canary watches active deployments only: nothing is left to roll back now.
    assert canary_check(app, equity=bad, margin=0.02, at=T0 + 5 * HOUR) is None
    assert [e.payload["by"] for e in app.audit.entries(kind="rules.rolled_back")] == [CANARY]


def test_canary_with_pairs_and_no_deployment(app: App) -> None:
    pairs = [(T0, 100.0), (T0 + HOUR, 50.0)]
    assert canary_check(app, equity=pairs, margin=0.0, at=T0) is None  # nothing deployed
    deploy(app, ADD_R1, report(mdd=0.2), at=T0)
    back = canary_check(app, equity=pairs, margin=0.1, at=T0 + HOUR)  # 50% > 30%
    assert back is not None and back.to_version == 1
    assert app.rules.active() == (1, RuleSet())


# --- the auto-deploy freeze -------------------------------------------------------------------


def test_freeze_persists_across_a_restart_until_a_person_clears_it(home: Path) -> None:
    app = App.open(Settings())
    try:
        assert autodeploy_frozen(app) is None
        assert freeze_autodeploy(app, "canary rolled back twice", T0, by=CANARY) is True
        assert freeze_autodeploy(app, "another reason", T0 + HOUR) is False  # first reason stands
    finally:
        app.dispose()
    app = App.open(Settings())
    try:
        assert autodeploy_frozen(app) == "canary rolled back twice"
        with pytest.raises(ValueError, match="name of the person"):
            clear_autodeploy_freeze(app, " ", T0 + HOUR)
        assert autodeploy_frozen(app) == "canary rolled back twice"
        assert clear_autodeploy_freeze(app, "ana", T0 + 2 * HOUR) is True
        assert clear_autodeploy_freeze(app, "ana", T0 + 2 * HOUR) is False
        assert autodeploy_frozen(app) is None
        assert [(e.kind, e.payload.get("by")) for e in app.audit.entries()] == [
            ("autodeploy.frozen", CANARY),
            ("autodeploy.cleared", "ana"),
        ]
        with pytest.raises(ValueError, match="needs a reason"):
            freeze_autodeploy(app, "", T0)
    finally:
        app.dispose()


# --- everything together: the audit chain holds -----------------------------------------------


def test_audit_chain_verifies_after_all_of_it(app: App) -> None:
    deploy(app, ADD_R1, report(), at=T0, cycle_id="c-1")
    reject(app, TUNE, stage="gate", violations=[VIOLATION], at=T0, cycle_id="c-1")
    freeze_autodeploy(app, "investigating", T0 + HOUR)
    reject(app, ADD_R2, stage="deploy", at=T0 + HOUR, cycle_id="c-2",
           violations=[{"code": "AUTODEPLOY_FROZEN", "field": "", "message": "frozen"}])  # fmt: skip
    clear_autodeploy_freeze(app, "ana", T0 + 2 * HOUR)
    deploy(app, ADD_R2, report(mdd=0.01), at=T0 + 3 * HOUR, cycle_id="c-3")
    canary_check(app, equity=[(T0 + 4 * HOUR, 100.0), (T0 + 5 * HOUR, 90.0)], margin=0.01,
                 at=T0 + 5 * HOUR)  # fmt: skip
    rollback(app, 1, by="ana", reason="clean slate", at=T0 + 6 * HOUR)
    result = app.audit.verify()
    assert result.ok and result.rows == 8
    assert _audit_kinds(app) == [
        "proposal.deployed", "proposal.rejected", "autodeploy.frozen", "proposal.rejected",
        "autodeploy.cleared", "proposal.deployed", "rules.rolled_back", "rules.rolled_back",
    ]  # fmt: skip
    # The frozen-deploy rejection does not count against the family; the gate's does.
    assert app.proposals.rejection_times(T0) == {TUNE.family: [T0]}
    history = [e.to_json() for e in app.proposals.history()]
    assert history[0]["event"] == "rollback" and history[0]["by"] == "ana"


# --- PostgreSQL -------------------------------------------------------------------------------


def test_deploy_reject_rollback_on_postgres(home: Path, pg_engine: Engine) -> None:  # noqa: F811
    url = pg_engine.url.render_as_string(hide_password=False)
    app = App.open(Settings(database_url=url))
    try:
        a = deploy(app, ADD_R1, report(), at=T0, cycle_id="c-1")
        assert deploy(app, ADD_R1, report(), at=T0, cycle_id="c-1") == a
        reject(app, TUNE, stage="gate", violations=[VIOLATION], at=T0, cycle_id="c-1")
        reject(app, "{not json", stage="validate", violations=[VIOLATION], at=T0, source="llm")
        b = deploy(app, TUNE.model_copy(update={"rationale": "retry"}), report(mdd=0.02),
                   at=T0 + HOUR, baseline_equity=1e5)  # fmt: skip
        back = canary_check(
            app, equity=[(T0 + 2 * HOUR, 1e5), (T0 + 3 * HOUR, 9e4)], margin=0.01, at=T0 + 3 * HOUR
        )
        assert back is not None and back.to_version == b.from_version == a.to_version
        assert app.rules.active() == (a.to_version, RuleSet(rules=(R1,)))
        assert freeze_autodeploy(app, "after a canary rollback", T0 + 3 * HOUR)
        assert autodeploy_frozen(app) == "after a canary rollback"
        assert app.proposals.rejection_times(T0) == {TUNE.family: [T0]}
        assert app.proposals.deployment_times(T0) == [T0, T0 + HOUR]
        assert app.audit.verify().ok
    finally:
        app.dispose()
