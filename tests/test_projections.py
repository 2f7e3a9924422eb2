"""Projections are disposable: a rebuild from the log gives identical rows (docs/protocol.md#invariants, 4)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from recorder.api import Durascope
from recorder.store.projector import rebuild
from tests.conftest import register
from tests.test_engine import callback_id, suspended

TABLES = {
    "executions": "execution_id",
    "operations": "execution_id, op_id",
    "callbacks": "callback_id",
    "timers": "execution_id, kind, op_id",
    "step_runs": "execution_id, op_id",
}


def snapshot(ds: Durascope) -> dict[str, list[tuple[Any, ...]]]:
    with ds.db.read() as s:
        return {
            t: [tuple(r) for r in s.execute(text(f"SELECT * FROM {t} ORDER BY {order}"))] for t, order in TABLES.items()
        }


def test_rebuild_gives_identical_rows(ds: Durascope) -> None:
    register(ds, "flaky", "th_basic:flaky")
    register(ds, "approval", "th_basic:approval")
    register(ds, "waits", "th_basic:waits")
    register(ds, "add-one", "th_basic:add_one")
    register(ds, "parent", "th_basic:calls_child")
    done = [ds.start("flaky", f'{{"key": "{uuid.uuid4()}"}}'), ds.start("parent", '{"target": "add-one"}')]
    waiting = ds.start("approval", '{"timeout": 300, "heartbeat": 100}')
    cid = callback_id(ds, waiting)
    suspended(ds, waiting)
    ds.callback_heartbeat(cid)
    approved = ds.start("approval", "{}")
    ds.callback_success(callback_id(ds, approved), b'"ok"')
    stopped = ds.start("waits", '{"seconds": 300}')
    suspended(ds, stopped)
    ds.stop(stopped)
    for arn in [*done, approved]:
        ds.wait(arn, 30)
    ds.engine.stop()  # type: ignore[union-attr]

    before = snapshot(ds)
    assert all(before[t] for t in TABLES), "every projection must have rows for the comparison to mean something"
    with ds.db.write() as conn:
        conn.execute(text("DELETE FROM operations"))
        conn.execute(text("DELETE FROM step_runs"))
        conn.execute(text("UPDATE executions SET status = 'BROKEN', active_ms = 0"))
        count = rebuild(conn)
    assert count > 30
    assert snapshot(ds) == before


def test_retention_purge_runs_from_its_timer(ds: Durascope) -> None:
    register(ds, "add-one", "th_basic:add_one", retention_days=1)
    arn = ds.start("add-one", "{}")
    ds.wait(arn, 30)
    eid = arn.rsplit("/", 1)[1]
    with ds.db.read() as s:
        due = s.execute(
            text("SELECT due_ms FROM timers WHERE execution_id = :e AND kind = 'purge'"), {"e": eid}
        ).scalar()
        end = s.execute(text("SELECT end_ms FROM executions WHERE execution_id = :e"), {"e": eid}).scalar()
    assert due == end + 86_400_000
    with ds.db.write() as conn:  # a day passes
        conn.execute(text("UPDATE timers SET due_ms = 0 WHERE execution_id = :e"), {"e": eid})
    ds.wait_for(lambda: _gone(ds, eid), 10, "purge did not run")


def _gone(ds: Durascope, eid: str) -> bool:
    with ds.db.read() as s:
        return s.execute(text("SELECT COUNT(*) FROM events WHERE execution_id = :e"), {"e": eid}).scalar() == 0
