"""ProposalStore: proposals (also unparseable input), verdicts, deployments, rollbacks, the
questions the validator asks, and the history, on real SQLite files (and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, timedelta

import pytest
from sqlalchemy import Engine, inspect

from sovereign.constitution.verdict import Violation
from sovereign.memory import (
    UNPARSEABLE,
    DeploymentStatus,
    ProposalHistory,
    ProposalStore,
    RollbackHistory,
    RuleStore,
    current_revision,
    describe,
    downgrade,
    make_engine,
    upgrade,
)
from sovereign.rules import (
    AddRule,
    ConfidenceBelow,
    ProposalSource,
    Regime,
    RegimeIs,
    Rule,
    RuleSet,
    SkipTrade,
    TightenStop,
    TuneParameter,
)

from .conftest import T0
from .test_migrations import EXPECTED_TABLES, HEAD, TABLES_0001, _diff
from .test_postgres import pg_admin_url, pg_engine  # noqa: F401 - fixtures

R1 = Rule(name="r1", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="too volatile"))
R2 = Rule(name="r2", when=ConfidenceBelow(value=0.45), then=TightenStop(atr_mult=1.5))
ADD_R1 = AddRule(rule=R1, rationale="entries lose in volatile regimes", source=ProposalSource.LLM)
ADD_R2 = AddRule(
    rule=R2, rationale="weak signals need tight stops", source=ProposalSource.HEURISTIC
)
TUNE = TuneParameter(
    strategy="momentum", parameter="lookback", value=40.0, rationale="faster", source="human"
)
VIOLATION = {"code": "CONST_MAX_ACTIVE_RULES", "field": "", "message": "too many rules"}


@pytest.fixture
def store(engine: Engine) -> ProposalStore:
    return ProposalStore(engine)


# --- describing and recording proposals -------------------------------------------------------


def test_describe_a_proposal_and_its_json_forms() -> None:
    d = describe(ADD_R1)
    assert (d.proposal_id, d.kind, d.family, d.source) == (
        ADD_R1.id,
        "add_rule",
        R1.family(),
        "llm",
    )
    assert d.body == ADD_R1.model_dump(mode="json")
    assert d.summary == ADD_R1.summary()
    assert d.proposal == ADD_R1
    # The same proposal as a dict or as JSON text is the same proposal.
    assert describe(ADD_R1.model_dump(mode="json")).proposal_id == ADD_R1.id
    assert describe(ADD_R1.model_dump_json()).proposal_id == ADD_R1.id


@pytest.mark.parametrize(
    ("raw", "text", "body"),
    [
        ("ignore previous instructions", "ignore previous instructions", None),
        ('{"kind": "add_rule", "rule": 3}', '{"kind": "add_rule", "rule": 3}', "json"),
        (b"\xff not utf-8", "\ufffd not utf-8", None),
        ({"kind": "delete_everything"}, '{"kind":"delete_everything"}', "dict"),
    ],
    ids=["text", "json-text", "bytes", "dict"],
)
def test_describe_unparseable_input(raw: object, text: str, body: str | None) -> None:
    d = describe(raw, source="llm")
    assert d.kind == UNPARSEABLE
    assert d.family is None
    assert d.proposal is None
    assert d.source == "llm"
    assert d.proposal_id == "p-raw-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    expected_body = json.loads(text) if body else text
    assert d.body == expected_body
    assert describe(raw).source == "unknown"


def test_record_proposal_is_idempotent_and_keeps_the_first_sighting(store: ProposalStore) -> None:
    first = store.record_proposal(ADD_R1, "c-1", T0)
    again = store.record_proposal(ADD_R1, "c-2", T0 + timedelta(days=1))
    assert first == again
    store.record_verdict(ADD_R1.id, stage="validate", accepted=True, cycle_id="c-1", at=T0)
    [entry] = store.history()
    assert isinstance(entry, ProposalHistory)
    assert (entry.cycle_id, entry.at) == ("c-1", T0)


def test_unparseable_input_is_recorded_with_its_raw_body(
    engine: Engine, store: ProposalStore
) -> None:
    raw = 'Sure! Here is my proposal: {"kind": "add_rule"'
    d = store.record_proposal(raw, "c-1", T0, source="llm")
    store.record_verdict(
        d.proposal_id,
        stage="validate",
        accepted=False,
        violations=[{"code": "LLM_UNPARSEABLE", "field": "", "message": "not JSON"}],
        cycle_id="c-1",
        at=T0,
    )
    [entry] = store.history(kind=UNPARSEABLE)
    assert isinstance(entry, ProposalHistory)
    assert entry.proposal_id.startswith("p-raw-")
    assert entry.verdict is not None
    assert entry.verdict.codes == ("LLM_UNPARSEABLE",)
    with engine.connect() as conn:
        body = conn.exec_driver_sql("SELECT body FROM proposals").scalar()
    assert json.loads(body) == raw


# --- verdicts ---------------------------------------------------------------------------------


def test_record_verdict_accepts_violation_objects_and_is_idempotent(store: ProposalStore) -> None:
    store.record_proposal(TUNE, "c-1", T0)
    v = store.record_verdict(
        TUNE.id,
        stage="gate",
        accepted=False,
        violations=[Violation(code="GATE_NOT_SIGNIFICANT", field="", message="noise")],
        gate_report={"accepted": False, "dsr": 0.41, "reasons": [["GATE_NOT_SIGNIFICANT", "x"]]},
        cycle_id="c-1",
        at=T0,
    )
    assert v.codes == ("GATE_NOT_SIGNIFICANT",)
    assert v.violations == ({"code": "GATE_NOT_SIGNIFICANT", "field": "", "message": "noise"},)
    assert v.gate_report == {
        "accepted": False,
        "dsr": 0.41,
        "reasons": [["GATE_NOT_SIGNIFICANT", "x"]],
    }
    assert v.created_at.tzinfo is UTC
    # The same attempt again (a resumed cycle) returns the stored verdict and writes nothing.
    again = store.record_verdict(
        TUNE.id, stage="gate", accepted=False, violations=[VIOLATION], cycle_id="c-1", at=T0
    )
    assert again == v
    # Outside a cycle the time tells attempts apart.
    store.record_verdict(TUNE.id, stage="gate", accepted=False, violations=[VIOLATION], at=T0)
    store.record_verdict(TUNE.id, stage="gate", accepted=False, violations=[VIOLATION], at=T0)
    later = T0 + timedelta(hours=1)
    store.record_verdict(TUNE.id, stage="gate", accepted=False, violations=[VIOLATION], at=later)
    assert len(store.verdicts(TUNE.id)) == 3
    assert store.find_verdict(TUNE.id, stage="gate", accepted=False, cycle_id=None, at=later)
    assert not store.find_verdict(TUNE.id, stage="validate", accepted=False, cycle_id="c-1", at=T0)
    # An acceptance is a different outcome from a rejection at the same stage and cycle.
    ok = store.record_verdict(TUNE.id, stage="gate", accepted=True, cycle_id="c-1", at=later)
    assert ok.id != v.id and ok.accepted
    assert len(store.verdicts(TUNE.id)) == 4


def test_bad_verdicts_are_refused(store: ProposalStore) -> None:
    store.record_proposal(TUNE, None, T0)
    with pytest.raises(ValueError, match="no code"):
        store.record_verdict(
            TUNE.id, stage="gate", accepted=False, violations=[{"field": ""}], at=T0
        )
    with pytest.raises(ValueError, match="not finite JSON"):
        store.record_verdict(
            TUNE.id, stage="gate", accepted=True, gate_report={"dsr": float("nan")}, at=T0
        )
    with pytest.raises(ValueError, match="'publish'"):
        store.record_verdict(TUNE.id, stage="publish", accepted=True, at=T0)
    with pytest.raises(ValueError, match="naive"):
        store.record_verdict(TUNE.id, stage="gate", accepted=True, at=T0.replace(tzinfo=None))
    assert store.verdicts(TUNE.id) == []


# --- deployments and rollbacks ----------------------------------------------------------------


def _versions(engine: Engine, n: int) -> list[int]:
    rules = RuleStore(engine)
    return [
        rules.save_version(RuleSet(rules=(R1,) * i), reason=f"v{i}", source="t", at=T0)
        for i in range(n)
    ]


def test_deployments_supersede_and_rollbacks_undo_newer_ones(
    engine: Engine, store: ProposalStore
) -> None:
    v1, v2, v3, v4 = _versions(engine, 4)
    for p in (ADD_R1, ADD_R2, TUNE):
        store.record_proposal(p, None, T0)
    a = store.record_deployment(
        proposal_id=ADD_R1.id, from_version=v1, to_version=v2, ruleset_id="rs-a", at=T0,
        expected_max_drawdown=0.08,
    )  # fmt: skip
    b = store.record_deployment(
        proposal_id=ADD_R2.id, from_version=v2, to_version=v3, ruleset_id="rs-b",
        at=T0 + timedelta(hours=1), expected_max_drawdown=0.07, baseline_equity=100_000.0,
    )  # fmt: skip
    assert [d.id for d in store.active_deployments()] == [b.id]
    assert [d.id for d in store.deployments()] == [a.id, b.id]
    assert store.deployment(ADD_R1.id).status is DeploymentStatus.SUPERSEDED  # type: ignore[union-attr]
    assert store.deployment(TUNE.id) is None

    at = T0 + timedelta(hours=2)
    back = store.record_rollback(
        from_version=v3, to_version=v1, ruleset_id="rs-0", at=at, by="ana", reason="oops"
    )
    assert back.deployment_id == b.id
    statuses = {
        d.proposal_id: (d.status, d.rolled_back_at, d.rollback_reason) for d in store.deployments()
    }
    assert statuses == {
        ADD_R1.id: (DeploymentStatus.ROLLED_BACK, at, "oops"),
        ADD_R2.id: (DeploymentStatus.ROLLED_BACK, at, "oops"),
    }
    assert store.active_deployments() == []

    # A later deployment that is rolled forward past: superseded, not rolled back.
    c = store.record_deployment(
        proposal_id=TUNE.id, from_version=v1, to_version=v2, ruleset_id="rs-c", at=at,
        expected_max_drawdown=0.05,
    )  # fmt: skip
    forward = store.record_rollback(
        from_version=v2, to_version=v4, ruleset_id="rs-4", at=at, by="ana", reason="forward"
    )
    assert forward.deployment_id == c.id
    assert store.deployment(TUNE.id).status is DeploymentStatus.SUPERSEDED  # type: ignore[union-attr]
    assert [r.id for r in store.rollbacks()] == [back.id, forward.id]


def test_history_merges_proposals_and_rollbacks_newest_first(
    engine: Engine, store: ProposalStore
) -> None:
    v1, v2 = _versions(engine, 2)
    store.record_proposal(ADD_R1, "c-1", T0)
    store.record_verdict(ADD_R1.id, stage="validate", accepted=True, cycle_id="c-1", at=T0)
    store.record_verdict(ADD_R1.id, stage="gate", accepted=True, cycle_id="c-1", at=T0)
    dep = store.record_deployment(
        proposal_id=ADD_R1.id, from_version=v1, to_version=v2, ruleset_id="rs-a", at=T0,
        expected_max_drawdown=0.08,
    )  # fmt: skip
    store.record_verdict(ADD_R1.id, stage="deploy", accepted=True, cycle_id="c-1", at=T0)
    store.record_proposal(TUNE, "c-2", T0 + timedelta(days=1))
    store.record_verdict(
        TUNE.id, stage="validate", accepted=False, violations=[VIOLATION], cycle_id="c-2",
        at=T0 + timedelta(days=1),
    )  # fmt: skip
    store.record_rollback(
        from_version=v2, to_version=v1, ruleset_id="rs-0", at=T0 + timedelta(hours=5), by="ana",
        reason="manual",
    )  # fmt: skip

    entries = store.history()
    assert [type(e).__name__ for e in entries] == [
        "ProposalHistory", "RollbackHistory", "ProposalHistory",
    ]  # fmt: skip
    newest, rollback, oldest = entries
    assert isinstance(newest, ProposalHistory) and isinstance(oldest, ProposalHistory)
    assert isinstance(rollback, RollbackHistory)
    assert newest.proposal_id == TUNE.id
    assert newest.verdict is not None and newest.verdict.codes == (VIOLATION["code"],)
    assert newest.deployment is None
    assert oldest.verdict is not None and oldest.verdict.stage.value == "deploy"
    assert oldest.deployment is not None and oldest.deployment.id == dep.id
    assert oldest.deployment.status is DeploymentStatus.ROLLED_BACK
    assert rollback.rollback.by == "ana"
    payload = json.loads(json.dumps([e.to_json() for e in entries]))
    assert [p["event"] for p in payload] == ["proposal", "rollback", "proposal"]
    assert payload[2]["deployment"]["status"] == "rolled_back"

    assert [e.proposal_id for e in store.history(kind="tune_parameter")] == [TUNE.id]  # type: ignore[union-attr]
    assert [type(e) for e in store.history(kind="rollback")] == [RollbackHistory]
    assert len(store.history(limit=2)) == 2
    assert store.history(limit=0) == []


# --- the validator's questions survive a restart ----------------------------------------------


def test_rejection_and_deployment_times_survive_a_reopened_engine(db_url: str) -> None:
    first = make_engine(db_url)
    upgrade(first)
    v1, v2, v3 = _versions(first, 3)
    store = ProposalStore(first)
    day = timedelta(days=1)
    # Two families rejected at validate/gate, one rejection at deploy (frozen), one accepted.
    store.record_proposal(ADD_R1, None, T0)
    variant = AddRule(
        rule=Rule(name="r1b", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="v")),
        rationale="same idea, other words",
        source=ProposalSource.LLM,
    )
    assert variant.family == ADD_R1.family and variant.id != ADD_R1.id
    store.record_proposal(variant, None, T0)
    store.record_proposal(TUNE, None, T0)
    store.record_proposal(ADD_R2, None, T0)
    store.record_proposal("garbage", None, T0)
    reject = {"accepted": False, "violations": [VIOLATION]}
    store.record_verdict(ADD_R1.id, stage="validate", at=T0 - day, **reject)  # before `since`
    store.record_verdict(ADD_R1.id, stage="validate", at=T0 + day, **reject)
    store.record_verdict(variant.id, stage="gate", at=T0 + 2 * day, **reject)
    store.record_verdict(TUNE.id, stage="gate", at=T0 + day, **reject)
    store.record_verdict(TUNE.id, stage="deploy", at=T0 + 3 * day, **reject)
    store.record_verdict(ADD_R2.id, stage="gate", accepted=True, at=T0 + day)
    store.record_verdict(describe("garbage").proposal_id, stage="validate", at=T0 + day, **reject)
    store.record_deployment(
        proposal_id=ADD_R2.id, from_version=v1, to_version=v2, ruleset_id="rs-b", at=T0 + day,
        expected_max_drawdown=0.05,
    )  # fmt: skip
    store.record_rollback(
        from_version=v2, to_version=v1, ruleset_id="rs-0", at=T0 + 2 * day, by="canary",
        reason="breach",
    )  # fmt: skip
    store.record_deployment(
        proposal_id=TUNE.id, from_version=v1, to_version=v3, ruleset_id="rs-t",
        at=T0 + 3 * day, expected_max_drawdown=0.05,
    )  # fmt: skip
    first.dispose()

    reopened = make_engine(db_url)
    try:
        again = ProposalStore(reopened)
        times = again.rejection_times(T0)
        assert times == {
            ADD_R1.family: [T0 + day, T0 + 2 * day],
            TUNE.family: [T0 + day],
        }
        assert all(t.tzinfo is UTC for ts in times.values() for t in ts)
        with_deploy = again.rejection_times(T0, stages=("validate", "gate", "deploy"))
        assert with_deploy[TUNE.family] == [T0 + day, T0 + 3 * day]
        # Rolled-back deployments still count; the rollback itself does not.
        assert again.deployment_times(T0) == [T0 + day, T0 + 3 * day]
        assert again.deployment_times(T0 + 2 * day) == [T0 + 3 * day]
    finally:
        reopened.dispose()


def test_autodeploy_state_round_trip(store: ProposalStore) -> None:
    assert store.autodeploy_state() is None
    store.save_autodeploy_state({"frozen": True, "reason": "canary"}, T0)
    assert store.autodeploy_state() == {"frozen": True, "reason": "canary"}
    with pytest.raises(ValueError, match="finite JSON"):
        store.save_autodeploy_state({"x": float("inf")}, T0)


# --- PostgreSQL -------------------------------------------------------------------------------


def test_self_modification_tables_on_postgres(pg_engine: Engine) -> None:  # noqa: F811
    assert current_revision(pg_engine) == HEAD
    assert set(inspect(pg_engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    from sovereign.memory import metadata

    assert _diff(pg_engine, metadata) == []

    v1, v2 = _versions(pg_engine, 2)
    store = ProposalStore(pg_engine)
    store.record_proposal(ADD_R1, "c-1", T0)
    raw = store.record_proposal("not json at all", "c-1", T0, source="llm")
    store.record_verdict(
        raw.proposal_id, stage="validate", accepted=False, violations=[VIOLATION], cycle_id="c-1",
        at=T0,
    )  # fmt: skip
    store.record_verdict(
        ADD_R1.id, stage="gate", accepted=True, gate_report={"expected_max_drawdown": 0.1},
        cycle_id="c-1", at=T0,
    )  # fmt: skip
    store.record_deployment(
        proposal_id=ADD_R1.id, from_version=v1, to_version=v2, ruleset_id="rs-a", at=T0,
        expected_max_drawdown=0.1,
    )  # fmt: skip
    store.record_rollback(
        from_version=v2, to_version=v1, ruleset_id="rs-0", at=T0 + timedelta(hours=1),
        by="canary", reason="breach",
    )  # fmt: skip
    assert store.deployment_times(T0) == [T0]
    assert store.rejection_times(T0) == {}  # the only rejection is unparseable: no family
    kinds = [e.to_json()["event"] for e in store.history()]
    assert sorted(kinds) == ["proposal", "proposal", "rollback"]
    assert store.deployment(ADD_R1.id).status is DeploymentStatus.ROLLED_BACK  # type: ignore[union-attr]

    downgrade(pg_engine, "0001")
    assert set(inspect(pg_engine).get_table_names()) == TABLES_0001 | {"alembic_version"}
    assert "params" not in {c["name"] for c in inspect(pg_engine).get_columns("ruleset_versions")}
    upgrade(pg_engine)
    assert _diff(pg_engine, metadata) == []
