"""The append path and the one purge path of the event log.

Positions must be safe for followers: once a reader has seen position N it must
never later find a committed row below N. PostgreSQL hands out sequence values at
insert time but transactions commit in any order, so, as the eventsourcing library
does, every append takes one transaction-scoped lock just before inserting: the next
appender cannot draw a position until this transaction has committed. The lock is
taken as late as possible (after validation and reads) to keep it short. SQLite has
one writer at a time, so its positions are already in commit order.

On PostgreSQL an append is held by the transaction's ``Workset`` and inserted by its
flush, lock first, in the one round trip that carries the transaction's other writes
(``recorder.store.sql``): the positions are drawn there, and the ``StoredEvent``s an
append returns carry none. Nothing in a write transaction needs them before commit
(the error index takes its occurrence's position from the inserted row). It saved a
round trip per append, 0.6 ms of engine CPU an execution in ``bench/workers_bench.py``'s
W4 on PostgreSQL. On SQLite the row is inserted at once and its position known.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select

from recorder.store.events import NewEvent, StoredEvent, compact_json
from recorder.store.models import (
    Callback,
    EngineState,
    ErrorOccurrence,
    Event,
    Execution,
    LogLine,
    Operation,
    PurgeGrant,
    StepRun,
    Timer,
    table_of,
)
from recorder.store.sql import Raw

if TYPE_CHECKING:
    from recorder.store.workset import ExecRow, Workset

# Arbitrary constant naming the application-wide append lock.
APPEND_LOCK_KEY = 0x64757261  # "dura"


_EVENTS = table_of(Event)
_EVENT_COLS = ("execution_id", "event_id", "event_type", "op_id", "ts_ms", "body", "extra")


def append(
    ws: Workset,
    execution_id: str,
    execution: ExecRow | None,
    events: Sequence[NewEvent],
    now_ms: int,
) -> list[StoredEvent]:
    """Insert ``events`` for one execution and return them numbered.

    The caller holds the execution's row lock (or is creating the execution), so
    EventIds continue from ``execution.last_event_id`` without gaps. Timestamps never
    go backwards within an execution. On PostgreSQL the rows are held for the workset's
    flush and the events returned have no position yet.
    """
    if not events:
        return []
    last_id = execution.last_event_id if execution else 0
    ts = max(now_ms, execution.last_ts_ms if execution else 0)
    rows = []
    prepared = []
    for ev in events:
        event_id = None
        if ev.history:
            last_id += 1
            event_id = last_id
        body = ev.body()
        rows.append(
            {
                "execution_id": execution_id,
                "event_id": event_id,
                "event_type": ev.event_type,
                "op_id": ev.op_id,
                "ts_ms": ts,
                "body": compact_json(body),
                "extra": compact_json(ev.extra) if ev.extra is not None else None,
            }
        )
        prepared.append((event_id, body, ev))
    raw = ws.raw
    positions: list[int | None]
    if raw.postgres:
        ws.hold_events(rows)
        positions = [None] * len(rows)
    else:
        # The transaction holds SQLite's write lock, so the rows take consecutive
        # positions (AUTOINCREMENT: above every position ever handed out) and the last
        # one is the connection's last rowid. executemany of one cached statement: a
        # multi-row VALUES list costs SQLite ~150 us a row to prepare at 200 rows.
        if len(rows) == 1:
            last = raw.insert(_INSERT_ONE, rows[0])
        else:
            raw.many(_INSERT_ONE, rows)
            row = raw.one("SELECT last_insert_rowid()")
            assert row is not None  # the function always answers one row
            last = row[0]
        positions = list(range(last - len(rows) + 1, last + 1))
    return [
        StoredEvent(pos, execution_id, event_id, ev.event_type, ev.op_id, ts, body, ev.extra)
        for pos, (event_id, body, ev) in zip(positions, prepared, strict=True)
    ]


_INSERT_ONE = f"INSERT INTO events ({', '.join(_EVENT_COLS)}) VALUES ({', '.join(':' + c for c in _EVENT_COLS)})"


def insert_held(raw: Raw, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: insert the events a transaction's appends held, after taking the append
    lock (inside the workset's flush batch: one round trip with its other writes)."""
    raw.run("SELECT pg_advisory_xact_lock(:k)", {"k": APPEND_LOCK_KEY})
    raw.many(_INSERT_ONE, rows)


def row_to_stored(row: Any) -> StoredEvent:
    """An ``events`` row (ORM object or Core row) as a StoredEvent."""
    return StoredEvent(
        position=row.position,
        execution_id=row.execution_id,
        event_id=row.event_id,
        event_type=row.event_type,
        op_id=row.op_id,
        ts_ms=row.ts_ms,
        body=json.loads(row.body),
        extra=json.loads(row.extra) if row.extra else None,
    )


def purge_execution(conn: Connection, execution_id: str) -> int:
    """Remove a closed execution and everything derived from it (retention purge).

    The only code that deletes events: it writes a purge grant, which the
    append-only trigger checks, deletes, and removes the grant again, all in the
    caller's transaction.
    """
    end = conn.execute(select(Execution.end_ms).where(Execution.execution_id == execution_id)).first()
    if end is not None and end[0] is None:
        raise ValueError(f"execution {execution_id} is not closed; only closed executions are purged")
    conn.execute(insert(PurgeGrant), {"execution_id": execution_id})
    deleted = conn.execute(delete(Event).where(Event.execution_id == execution_id)).rowcount
    for model in (Operation, StepRun, Callback, Timer, EngineState, LogLine, ErrorOccurrence):
        conn.execute(delete(model).where(model.execution_id == execution_id))
    conn.execute(delete(Execution).where(Execution.execution_id == execution_id))
    conn.execute(delete(PurgeGrant).where(PurgeGrant.execution_id == execution_id))
    return deleted or 0
