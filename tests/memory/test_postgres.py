"""Migrations, the audit chain and the repositories on a REAL PostgreSQL server.

The server is either the one named by ``SOVEREIGN_TEST_POSTGRES_URL`` (e.g. a CI service
container; ``postgresql+psycopg://user:pass@host:port/db``, the user must be able to create
databases) or a throwaway cluster started here from the ``initdb``/``pg_ctl`` binaries of a local
PostgreSQL install (Debian/Ubuntu: ``apt-get install postgresql``), run as the ``postgres`` user
when the tests run as root, listening on 127.0.0.1 on a free port. Each test gets a fresh
database. Skipped, with the reason, when psycopg or the server binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from sovereign.memory import (
    AuditLog,
    RuleStore,
    SupervisorStore,
    TradeMemory,
    current_revision,
    downgrade,
    make_engine,
    upgrade,
)
from sovereign.rules import Regime, RegimeIs, Rule, RuleSet, ScalePosition, SkipTrade, VolumeBelow

from .conftest import T0
from .test_migrations import EXPECTED_TABLES, HEAD, _diff

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]>=3.1,<4'"
)

ENV_URL = "SOVEREIGN_TEST_POSTGRES_URL"


def _find_bin() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    found = candidates[0] if candidates else shutil.which("initdb")
    if found is None or not (Path(found).parent / "pg_ctl").exists():
        return None
    return Path(found).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _LocalCluster:
    """A PostgreSQL cluster in a temporary directory, owned by ``postgres`` when we are root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="sovereign-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            runuser = shutil.which("runuser")
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = None
            if runuser is None or user is None:
                shutil.rmtree(self.base)
                pytest.skip("running as root needs `runuser` and a `postgres` user for initdb")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self.prefix, *args], cwd=self.base, check=True, capture_output=True, timeout=timeout
        )

    def start(self) -> str:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.base} -c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_admin_url() -> Iterator[str]:
    """URL of a maintenance database on a running server (external, or started here)."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    bin_dir = _find_bin()
    if bin_dir is None:
        pytest.skip(
            f"no PostgreSQL server binaries (initdb, pg_ctl) found and {ENV_URL} is not set: "
            "apt-get install postgresql"
        )
    cluster = _LocalCluster(bin_dir)
    started = time.perf_counter()
    try:
        url = cluster.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        log = cluster.base / "log"
        detail = log.read_text() if log.exists() else getattr(err, "stderr", b"").decode()
        cluster.stop()
        pytest.fail(f"could not start a local PostgreSQL server: {err}\n{detail}")
    print(
        f"\n  local PostgreSQL ({bin_dir.parent.name}) up in {time.perf_counter() - started:.2f}s"
    )
    try:
        yield url
    finally:
        cluster.stop()


def _admin(url: str, sql: str) -> None:
    u = make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
        autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute(sql)


@pytest.fixture
def pg_engine(pg_admin_url: str) -> Iterator[Engine]:
    """A migrated, empty database of its own for each test."""
    name = f"sovereign_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(pg_admin_url).set(database=name)
    eng = make_engine(url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_match_the_metadata_and_downgrade(pg_engine: Engine) -> None:
    assert current_revision(pg_engine) == HEAD
    assert set(inspect(pg_engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    assert _diff(pg_engine, __import__("sovereign.memory").memory.metadata) == []
    downgrade(pg_engine, "base")
    assert set(inspect(pg_engine).get_table_names()) == {"alembic_version"}
    with pg_engine.connect() as conn:
        functions = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_proc WHERE proname = 'audit_log_append_only'"
        ).scalar()
        assert functions == 0
    upgrade(pg_engine)
    assert current_revision(pg_engine) == HEAD


def test_audit_chain_and_append_only_triggers(pg_engine: Engine) -> None:
    log = AuditLog(pg_engine)
    log.append_many(
        [("deploy", {"version": i, "x": 0.1 * i}, T0 + timedelta(minutes=i)) for i in range(5)]
    )
    log.append(
        "halt", {"reason": "drawdown", "big": 1e20}, T0.astimezone(timezone(timedelta(hours=9)))
    )
    result = log.verify()
    assert (result.ok, result.rows) == (True, 6)
    head = log.head()
    assert head is not None
    assert head.timestamp == T0
    assert head.timestamp.tzinfo is UTC
    for statement in (
        "UPDATE audit_log SET kind = 'forged' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 6",
        "TRUNCATE audit_log",
    ):
        with (
            pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"),
            pg_engine.begin() as conn,
        ):
            conn.exec_driver_sql(statement)
    assert log.verify().ok


def _tamper(engine: Engine, statements: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for statement in statements.split(";"):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("statements", "first_bad"),
    [
        ("""UPDATE audit_log SET payload = '{"version": 9}' WHERE seq = 3""", 3),
        ("DELETE FROM audit_log WHERE seq = 2", 3),
        (
            "UPDATE audit_log SET seq = 100 WHERE seq = 2;"
            "UPDATE audit_log SET seq = 2 WHERE seq = 3;"
            "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            2,
        ),
    ],
    ids=["edited", "deleted", "reordered"],
)
def test_tampering_is_detected(pg_engine: Engine, statements: str, first_bad: int) -> None:
    log = AuditLog(pg_engine)
    log.append_many([("deploy", {"version": i}, T0 + timedelta(minutes=i)) for i in range(5)])
    _tamper(pg_engine, statements)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, first_bad)


def test_concurrent_writers_do_not_fork_the_chain(pg_engine: Engine) -> None:
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            log = AuditLog(pg_engine)
            for i in range(20):
                log.append("tick", {"writer": w, "i": i}, T0)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = AuditLog(pg_engine).verify()
    assert (result.ok, result.rows) == (True, 80)


def test_repositories_on_postgres(pg_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    rules = RuleStore(pg_engine)
    first = RuleSet(
        rules=(Rule(name="r1", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="x")),)
    )
    second = RuleSet(
        rules=(
            *first.rules,
            Rule(name="r2", when=VolumeBelow(percentile=10), then=ScalePosition(factor=0.5)),
        )
    )
    v1 = rules.save_version(first, reason="a", source="t", at=T0)
    v2 = rules.save_version(second, reason="b", source="t", at=T0)
    assert rules.active() == (v2, second)
    assert rules.activate(v1).id == first.id

    mem = TradeMemory(pg_engine)
    mem.record_run_start("bt", started_at=T0, mode="backtest", seed=1)
    rows = [
        {
            "run_id": "bt", "timestamp": T0 + timedelta(hours=i), "equity": 1e5 + i, "cash": 5e4,
        }
        for i in range(20_000)
    ]  # fmt: skip
    started = time.perf_counter()
    mem.add_equity_snapshots(rows)
    with capsys.disabled():
        elapsed = time.perf_counter() - started
        print(f"\n  bulk insert of 20,000 equity snapshots into PostgreSQL: {elapsed:.2f}s")
    curve = mem.equity_curve("bt")
    assert len(curve) == 20_000
    assert curve[-1].timestamp == T0 + timedelta(hours=19_999)
    assert curve[-1].timestamp.tzinfo is UTC
    order = {
        "client_order_id": "sv-1", "run_id": "bt", "strategy": "m", "symbol": "A", "side": "buy",
        "quantity": 1.0, "status": "new", "submitted_at": T0,
    }  # fmt: skip
    mem.add_orders([order])
    mem.add_orders([{**order, "status": "filled"}])
    assert [o.status for o in mem.orders()] == ["filled"]

    sup = SupervisorStore(pg_engine)
    sup.save_state("halted", {"halted": True}, T0)
    sup.save_state("halted", {"halted": False}, T0)
    assert sup.load_state("halted") == {"halted": False}
