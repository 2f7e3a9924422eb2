"""The event store: schema by Alembic, append-only triggers, gap-free numbering, gap-safe positions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from recorder.api import Durascope
from recorder.store.availability import DatabaseUnavailable
from recorder.store.db import Database, SchemaOutdated
from recorder.store.log import purge_execution
from recorder.store.models import Event, Execution
from tests.conftest import _pg_admin, register


def test_schema_is_at_alembic_head(control_only: Durascope) -> None:
    db = control_only.db
    assert db.current_revision() == db.head_revision()
    with db.read() as s:
        tables = {"events", "executions", "operations", "callbacks", "timers", "engine_state", "functions", "log_lines"}
        for table in tables:
            s.execute(text(f"SELECT COUNT(*) FROM {table}"))


def test_out_of_date_schema_says_what_to_run(database_url: str) -> None:
    d = Durascope.open(database_url, run_engine=False)
    with d.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000old'"))
    d.close()
    with pytest.raises(SchemaOutdated, match="durascope db upgrade"):
        Durascope.open(database_url, run_engine=False, auto_upgrade=False)


def _one_execution(d: Durascope) -> str:
    register(d, "add-one", "th_basic:add_one")
    return d.start("add-one", '{"a": 1}')


def test_update_of_an_event_is_refused(control_only: Durascope) -> None:
    _one_execution(control_only)
    with pytest.raises(DBAPIError, match="append-only"):
        with control_only.db.write() as s:
            s.execute(text("UPDATE events SET body = '{}'"))
    with control_only.db.read() as s:
        assert s.scalar(select(Event.body).where(Event.event_id == 1)) != "{}"


def test_delete_of_an_event_is_refused_outside_the_purge(control_only: Durascope) -> None:
    _one_execution(control_only)
    with pytest.raises(DBAPIError, match="append-only"):
        with control_only.db.write() as s:
            s.execute(text("DELETE FROM events"))
    with control_only.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 1


def test_purge_removes_a_closed_execution_only(ds: Durascope) -> None:
    register(ds, "add-one", "th_basic:add_one")
    done = ds.start("add-one", '{"a": 1}')
    ds.wait(done, 30)
    eid = done.rsplit("/", 1)[1]
    ds.engine.stop()
    running = ds.control.start_execution("add-one", "{}").execution_id
    with pytest.raises(ValueError, match="not closed"):
        with ds.db.write() as s:
            purge_execution(s, running)
    with ds.db.write() as s:
        assert purge_execution(s, eid) > 0
    with ds.db.read() as s:
        assert s.get(Execution, eid) is None
        assert s.scalar(select(func.count()).select_from(Event).where(Event.execution_id == eid)) == 0


def test_positions_are_never_reused_after_the_newest_execution_is_deleted(ds: Durascope) -> None:
    """Followers resume after the highest position they saw: a purge of the newest rows
    must not hand those positions out again (SQLite's rowid would, without AUTOINCREMENT)."""
    register(ds, "add-one", "th_basic:add_one")
    newest = ds.start("add-one", '{"a": 1}')
    ds.wait(newest, 30)
    with ds.db.read() as s:
        seen = s.scalar(select(func.max(Event.position)))
    ds.delete(newest)
    after = ds.start("add-one", '{"a": 2}')
    ds.wait(after, 30)
    eid = after.rsplit("/", 1)[1]
    with ds.db.read() as s:
        first = s.scalar(select(func.min(Event.position)).where(Event.execution_id == eid))
    assert first > seen


@pytest.fixture
def pg_only(pg_url: str) -> Iterator[Durascope]:
    d = Durascope.open(pg_url, run_engine=False)
    try:
        yield d
    finally:
        d.close()


def test_connections_the_server_dropped_are_replaced(pg_only: Durascope) -> None:
    """PostgreSQL. The write path runs SQL on the driver connection and keeps no pre-ping:
    after the server drops its connections (a restart), one request may fail, and the pool
    must not hand the dead connections out again."""
    control_only = pg_only
    register(control_only, "add-one", "th_basic:add_one")
    threads = [threading.Thread(target=control_only.start, args=("add-one", "{}")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    name = control_only.db.engine.url.database
    with _pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    failures = 0
    for _ in range(8):
        try:
            control_only.start("add-one", "{}")
            control_only.describe(control_only.start("add-one", "{}"))
        except DatabaseUnavailable:  # a lost connection, whichever path (ORM or raw SQL) met it
            failures += 1
    assert failures <= 2
    with control_only.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Execution)) >= 6 + 2 * (8 - failures)


def test_event_ids_are_gap_free_and_positions_increase(ds: Durascope) -> None:
    register(ds, "flaky", "th_basic:flaky")
    arns = [ds.start("flaky", f'{{"key": "gap-{i}-{time.time()}"}}') for i in range(3)]
    for arn in arns:
        assert ds.wait(arn, 30).status == "SUCCEEDED"
    with ds.db.read() as s:
        for arn in arns:
            eid = arn.rsplit("/", 1)[1]
            rows = s.execute(
                select(Event.event_id, Event.position, Event.ts_ms)
                .where(Event.execution_id == eid, Event.event_id.is_not(None))
                .order_by(Event.position)
            ).all()
            assert [r.event_id for r in rows] == list(range(1, len(rows) + 1))
            assert [r.ts_ms for r in rows] == sorted(r.ts_ms for r in rows)
        positions = s.scalars(select(Event.position).order_by(Event.position)).all()
        assert positions == sorted(set(positions))


def test_concurrent_writers_never_commit_below_a_seen_position(control_only: Durascope) -> None:
    """A reader that has seen position N must never later find a committed row below N."""
    d = control_only
    register(d, "add-one", "th_basic:add_one")
    stop = threading.Event()
    violations: list[str] = []
    seen: set[int] = set()

    def reader() -> None:
        high = 0
        while True:
            # A pass that starts after stop is set sees every write: it is the last one.
            last = stop.is_set()
            with d.db.read() as s:
                rows = s.scalars(select(Event.position).where(Event.position <= high)).all()
                missing = [p for p in rows if p not in seen]
                if missing:
                    violations.append(f"positions {missing[:5]} committed after {high} was seen")
                new = s.scalars(select(Event.position).where(Event.position > high).order_by(Event.position)).all()
            seen.update(new)
            if new:
                high = new[-1]
            if last:
                return

    def writer(k: int) -> None:
        for i in range(25):
            d.control.start_execution("add-one", f'{{"a": {i}}}', name=f"w{k}-{i}")

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    r.join()
    assert not violations
    with d.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 200
    assert len(seen) == 200


def test_a_batch_of_writes_lands_together_or_not_at_all(control_only: Durascope) -> None:
    """``Raw.batch`` (on PostgreSQL one text sent at the end) writes what it holds, and a
    failure inside it fails the transaction with nothing of it written, as statements run
    one by one do."""
    from recorder.store.sql import Raw

    db = control_only.db
    with db.write() as conn:
        conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY)"))
    with db.write() as conn:
        raw = Raw(conn)
        with raw.batch():
            raw.many("INSERT INTO scratch (id) VALUES (:id)", [{"id": 1}, {"id": 2}])
            raw.run("INSERT INTO scratch (id) VALUES (:id)", {"id": 3})
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        with db.write() as conn:
            raw = Raw(conn)
            with raw.batch():
                raw.run("INSERT INTO scratch (id) VALUES (:id)", {"id": 4})
                raw.run("INSERT INTO scratch (id) VALUES (:id)", {"id": 1})
    with db.write() as conn:
        assert sorted(r[0] for r in conn.execute(text("SELECT id FROM scratch"))) == [1, 2, 3]


HOSTILE_VALUES = [
    "it's",
    "'); DROP TABLE scratch2; --",
    "back\\slash \\' and a quote",
    "$$ dollar $$ quoting $tag$",
    "%(id)s and %s and :id",
    "line\nbreak\ttab\r",
    "ünïcødé ✓ 😀",
    "E'\\x41'",
]


def test_batched_values_are_quoted_as_values(control_only: Durascope) -> None:
    """Inside a batch PostgreSQL gets the statements as one text with the values bound in by
    psycopg's client-side quoting: a value that looks like SQL, a placeholder or an escape
    is stored as it was given and runs nothing. A read inside the batch sees the writes
    held before it."""
    from recorder.store.sql import Raw

    db = control_only.db
    with db.write() as conn:
        conn.execute(text("CREATE TABLE scratch2 (id INTEGER PRIMARY KEY, body TEXT, n BIGINT, flag BOOLEAN)"))
    rows = [{"id": i, "body": v, "n": 2**62 - i, "flag": i % 2 == 0} for i, v in enumerate(HOSTILE_VALUES)]
    with db.write() as conn:
        raw = Raw(conn)
        with raw.batch():
            raw.many("INSERT INTO scratch2 (id, body, n, flag) VALUES (:id, :body, :n, :flag)", rows)
            raw.run("UPDATE scratch2 SET body = :body WHERE id = :id", {"id": 0, "body": None})
            seen = raw.one("SELECT count(*), count(body) FROM scratch2")
            assert tuple(seen or ()) == (len(rows), len(rows) - 1)
    with db.read() as s:
        stored = s.execute(text("SELECT id, body, n, flag FROM scratch2 ORDER BY id")).all()
    expected = [(r["id"], None if r["id"] == 0 else r["body"], r["n"], r["flag"]) for r in rows]
    assert [tuple(r) for r in stored] == expected


def test_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        Database("mysql://root@127.0.0.1/test")


def test_sqlite_wal_checkpoints_run_off_the_commit_path(tmp_path) -> None:
    """The writer never checkpoints inside a COMMIT (a 1,000-page checkpoint stalled one
    commit for ~20 ms); the checkpoint thread keeps the WAL bounded under a steady stream
    of commits (checkpointing only beside the writer grew it to 62 MB in 5,000 commits)."""
    import os

    from recorder.store.walcheck import COMMITS_PER_CHECKPOINT

    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
        # Commits take ~0.1 ms here, so the thread lags by hundreds of them at times (the
        # WAL peaked at 6 to 13 MB); without a restart it holds every commit (62 MB with a
        # one-pass checkpointer), more than the whole table. So: never more than the data.
        rounds = 50 * COMMITS_PER_CHECKPOINT
        largest = 0
        for i in range(rounds):
            with db.write() as conn:
                conn.execute(text("INSERT INTO t (body) VALUES (:b)"), {"b": "x" * 3000})
            if i % 20 == 0:
                largest = max(largest, os.path.getsize(f"{path}-wal"))
        checkpointer = db.wal_checkpointer
        assert checkpointer is not None
        # The thread coalesces requests that arrive while it works: fewer runs than
        # rounds / cadence, but many.
        deadline = time.monotonic() + 30
        while checkpointer.checkpoints < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.checkpoints >= 10
        assert largest < os.path.getsize(path)
    finally:
        db.dispose()
