"""RuleStore: versions round-trip to the exact RuleSet, activation is a rollback, tampering is
caught."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from sovereign.errors import IntegrityError
from sovereign.memory import NotFound, make_engine, upgrade
from sovereign.memory.rule_store import RuleStore
from sovereign.rules import (
    All,
    AtrAbove,
    BlockSymbol,
    ConfidenceBelow,
    DayOfWeek,
    ExitPosition,
    Not,
    Regime,
    RegimeIs,
    Rule,
    RuleSet,
    ScalePosition,
    SkipTrade,
    SymbolIn,
    TightenStop,
    VolumeBelow,
)

from .conftest import T0

R1 = Rule(name="r1", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="too volatile"))
R2 = Rule(
    name="r2",
    strategy="momentum",
    when=All(all=(AtrAbove(pct=2.5), Not(cond=VolumeBelow(percentile=20)))),
    then=ScalePosition(factor=0.5),
)
R3 = Rule(name="r3", when=ConfidenceBelow(value=0.45), then=TightenStop(atr_mult=1.5))


@pytest.fixture
def store(engine: Engine) -> RuleStore:
    return RuleStore(engine)


def test_no_active_version_at_first(store: RuleStore) -> None:
    assert store.active() is None
    assert store.active_version() is None
    assert store.versions() == []


def test_save_and_load_round_trip(store: RuleStore) -> None:
    rs = RuleSet(rules=(R1, R2))
    v = store.save_version(rs, reason="initial", source="person", at=T0)
    assert v == 1
    active = store.active()
    assert active is not None
    n, loaded = active
    assert n == 1
    assert loaded == rs
    assert loaded.id == rs.id
    assert [r.id for r in loaded.rules] == [R1.id, R2.id]
    assert store.rule(R2.id) == R2
    assert store.rule("r-missing") is None


def test_versions_record_their_parent_and_activation_rolls_back(store: RuleStore) -> None:
    v1 = store.save_version(RuleSet(rules=(R1,)), reason="initial", source="person", at=T0)
    v2 = store.save_version(
        RuleSet(rules=(R1, R2)), reason="deploy p-7", source="llm", at=T0 + timedelta(days=1)
    )
    v3 = store.save_version(
        RuleSet(rules=(R3, R1)), reason="candidate", source="heuristic", activate=False
    )
    assert (v1, v2, v3) == (1, 2, 3)
    assert store.active_version() == 2
    rows = store.versions()
    assert [(r.version, r.parent_version, r.source) for r in rows] == [
        (1, None, "person"),
        (2, 1, "llm"),
        (3, 2, "heuristic"),
    ]
    assert rows[1].created_at == T0 + timedelta(days=1)
    assert rows[1].rule_ids == [R1.id, R2.id]

    restored = store.activate(1, at=T0 + timedelta(days=2))
    assert restored.id == RuleSet(rules=(R1,)).id
    active = store.active()
    assert active is not None
    assert active[0] == 1
    assert active[1].id == restored.id
    # A version saved after a rollback descends from the restored version.
    v4 = store.save_version(RuleSet(rules=(R3,)), reason="after rollback", source="person")
    assert store.versions()[-1].parent_version == 1
    assert v4 == 4


def test_empty_and_duplicate_rule_sets(store: RuleStore) -> None:
    empty = RuleSet()
    assert store.version(store.save_version(empty, reason="", source="t")) == empty
    twice = RuleSet(rules=(R1, R1))
    loaded = store.version(store.save_version(twice, reason="", source="t"))
    assert loaded.id == twice.id
    assert len(loaded) == 2


def test_unknown_version(store: RuleStore) -> None:
    with pytest.raises(NotFound, match="no rule set version 9"):
        store.version(9)
    with pytest.raises(NotFound):
        store.activate(9)
    assert store.active() is None


def test_altered_rule_body_is_an_integrity_error(engine: Engine, store: RuleStore) -> None:
    v = store.save_version(RuleSet(rules=(R1,)), reason="", source="t")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE rules SET body = json_set(body, '$.then.reason', 'edited') WHERE rule_id = ?",
            (R1.id,),
        )
    with pytest.raises(IntegrityError, match="was altered"):
        store.version(v)
    with pytest.raises(IntegrityError):
        store.activate(v)


def test_altered_version_list_is_an_integrity_error(engine: Engine, store: RuleStore) -> None:
    v = store.save_version(RuleSet(rules=(R1, R2)), reason="", source="t")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE ruleset_versions SET rule_ids = ? WHERE version = ?", (f'["{R2.id}"]', v)
        )
    with pytest.raises(IntegrityError, match="hashes to"):
        store.version(v)


def test_naive_time_is_refused(store: RuleStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.save_version(RuleSet(rules=(R1,)), reason="", source="t", at=T0.replace(tzinfo=None))


def test_failed_save_leaves_nothing(store: RuleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rules and the version row are written, then moving the pointer fails: all rolled back.
    def fail(*_: object) -> None:
        raise RuntimeError("crash while moving the pointer")

    monkeypatch.setattr(RuleStore, "_point", fail)
    with pytest.raises(RuntimeError, match="crash"):
        store.save_version(RuleSet(rules=(R1,)), reason="", source="t", at=T0)
    monkeypatch.undo()
    assert store.versions() == []
    assert store.rule(R1.id) is None
    assert store.active() is None


# --- property: save then load gives back exactly the rule set -----------------------------

_conditions = st.one_of(
    st.builds(RegimeIs, regime=st.sampled_from(list(Regime))),
    st.builds(VolumeBelow, percentile=st.floats(0, 100)),
    st.builds(AtrAbove, pct=st.floats(0.01, 100)),
    st.builds(ConfidenceBelow, value=st.floats(0, 1)),
    st.builds(
        SymbolIn,
        symbols=st.lists(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), min_size=1, max_size=4).map(
            tuple
        ),
    ),
    st.builds(DayOfWeek, days=st.lists(st.integers(0, 6), min_size=1, max_size=7).map(tuple)),
)
_actions = st.one_of(
    st.builds(SkipTrade, reason=st.text(min_size=1, max_size=40)),
    st.builds(ScalePosition, factor=st.floats(0.001, 1)),
    st.builds(TightenStop, atr_mult=st.floats(0.01, 10)),
    st.builds(BlockSymbol, days=st.integers(1, 365)),
    st.just(ExitPosition()),
)
_rules = st.builds(
    Rule,
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_. -]{0,20}", fullmatch=True),
    strategy=st.one_of(st.none(), st.sampled_from(["momentum", "meanrev"])),
    when=st.one_of(_conditions, st.builds(lambda c: Not(cond=c), _conditions)),
    then=_actions,
)
_rulesets = st.lists(_rules, max_size=8).map(lambda rs: RuleSet(rules=tuple(rs)))


def test_property_rollback_of_deploy_is_identity(tmp_path_factory: pytest.TempPathFactory) -> None:
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'm.db'}")
    upgrade(eng)
    store = RuleStore(eng)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(first=_rulesets, second=_rulesets)
    def check(first: RuleSet, second: RuleSet) -> None:
        v1 = store.save_version(first, reason="a", source="prop")
        v2 = store.save_version(second, reason="b", source="prop")
        active = store.active()
        assert active is not None
        assert active[0] == v2
        assert active[1].id == second.id
        assert active[1] == second
        assert store.activate(v1).id == first.id  # rollback(deploy(x)) == x
        reloaded = store.active()
        assert reloaded is not None
        assert reloaded == (v1, first)

    try:
        check()
    finally:
        eng.dispose()


def test_deploy_and_its_audit_entry_share_one_transaction(engine: Engine, store: RuleStore) -> None:
    from sovereign.memory import AuditLog, session

    audit = AuditLog(engine)
    with session(engine, immediate=True) as db:
        v = store.save_version(RuleSet(rules=(R1,)), reason="p-1", source="llm", at=T0, db=db)
        audit.append("deploy", {"version": v}, T0, db=db)

    def deploy_then_crash() -> None:
        with session(engine, immediate=True) as db:
            v2 = store.save_version(RuleSet(rules=(R2,)), reason="p-2", source="llm", db=db)
            audit.append("deploy", {"version": v2}, T0, db=db)
            raise RuntimeError("notify failed")

    with pytest.raises(RuntimeError, match="notify failed"):
        deploy_then_crash()
    assert [r.version for r in store.versions()] == [1]
    assert store.active_version() == 1
    assert [e.payload for e in audit.entries()] == [{"version": 1}]
    assert audit.verify().ok


# --- parameter overrides (migration 0002) --------------------------------------------------


def test_parameter_overrides_round_trip_and_count_in_the_id(store: RuleStore) -> None:
    plain = RuleSet(rules=(R1, R2))
    tuned = plain.with_param("momentum", "lookback", 63.0).with_param("regime_entry", "atr", 2.5)
    assert tuned.id != plain.id
    v_plain = store.save_version(plain, reason="", source="t", at=T0)
    v_tuned = store.save_version(tuned, reason="tune", source="t", at=T0)
    assert store.versions()[-1].params == {
        "momentum": {"lookback": 63.0},
        "regime_entry": {"atr": 2.5},
    }
    loaded = store.version(v_tuned)
    assert loaded == tuned
    assert loaded.id == tuned.id
    assert loaded.strategy_params("momentum") == {"lookback": 63.0}
    assert store.activate(v_plain) == plain  # rolling back drops the overrides too
    assert store.version(v_plain).params == {}


def test_altered_parameter_overrides_are_an_integrity_error(
    engine: Engine, store: RuleStore
) -> None:
    v = store.save_version(
        RuleSet(rules=(R1,)).with_param("momentum", "lookback", 63.0), reason="", source="t"
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE ruleset_versions SET params = ? WHERE version = ?",
            ('{"momentum": {"lookback": 20.0}}', v),
        )
    with pytest.raises(IntegrityError, match="hashes to"):
        store.version(v)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE ruleset_versions SET params = ? WHERE version = ?",
            ('{"momentum": {"lookback": "long"}}', v),
        )
    with pytest.raises(IntegrityError, match="invalid parameter overrides"):
        store.activate(v)


def test_non_finite_parameter_is_refused(store: RuleStore) -> None:
    with pytest.raises(ValueError, match="not finite"):
        store.save_version(
            RuleSet().with_param("momentum", "lookback", float("nan")), reason="", source="t"
        )
    assert store.versions() == []


_params = st.dictionaries(
    st.sampled_from(["momentum", "regime_entry", "sma_cross"]),
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False),
        max_size=3,
    ),
    max_size=3,
)


def test_property_overrides_survive_save_and_rollback(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'm.db'}")
    upgrade(eng)
    store = RuleStore(eng)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rules=_rulesets, first=_params, second=_params)
    def check(
        rules: RuleSet, first: dict[str, dict[str, float]], second: dict[str, dict[str, float]]
    ) -> None:
        a = RuleSet(rules=rules.rules, params=first)
        b = RuleSet(rules=rules.rules, params=second)
        v1 = store.save_version(a, reason="a", source="prop")
        store.save_version(b, reason="b", source="prop")
        assert store.active() == (v1 + 1, b)
        restored = store.activate(v1)
        assert restored == a
        assert restored.id == a.id

    try:
        check()
    finally:
        eng.dispose()
