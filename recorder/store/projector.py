"""Fold log events into the projections (executions, operations, callbacks, timers).

The live path and ``rebuild`` call the same ``apply`` on a ``Workset``, in the same
transaction as the append, so a rebuild from the log yields identical rows (DESIGN
invariant 4). Everything a projection holds must therefore be derivable from the
event and its ``extra``: never read the clock or engine state here.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from recorder.store.error_index import KINDS, occurrence
from recorder.store.events import StoredEvent
from recorder.store.models import ErrorOccurrence, Event, table_of
from recorder.store.projections import HANDLERS, execution_started
from recorder.store.workset import CALLBACKS, EXECUTIONS, OPERATIONS, TIMERS, Workset

__all__ = ["Projector", "rebuild"]


class Projector:
    """Folds each event into the projections through its operation type's handler
    (``recorder.store.projections``)."""

    def __init__(self, ws: Workset) -> None:
        self.ws = ws

    def apply(self, ev: StoredEvent) -> None:
        t = ev.event_type
        if t == "ExecutionStarted":
            execution_started(self.ws, ev)
            return
        ws = self.ws
        execution = ws.execution(ev.execution_id)
        assert execution is not None, f"event {t} for unknown execution {ev.execution_id}"
        if ev.event_id is not None:
            execution.last_event_id = ev.event_id
        execution.last_ts_ms = max(execution.last_ts_ms, ev.ts_ms)
        ws.touch_execution(execution)
        if t in KINDS:
            found = occurrence(ev, execution.function_name)
            if found is not None:
                ws.add_occurrence(found)
        handler = HANDLERS.get(t)
        if handler is None:
            raise ValueError(f"projector does not know event type {t!r}")
        op = handler(ws, ev, execution)
        if op is not None:
            ws.touch_op(op)


def rebuild(conn: Connection, execution_ids: list[str] | None = None) -> int:
    """Drop and recompute the projections (error occurrences included) from the log.
    Returns events replayed."""
    from recorder.store.log import row_to_stored

    for table in (CALLBACKS, TIMERS, OPERATIONS, EXECUTIONS, table_of(ErrorOccurrence)):
        stmt = delete(table)
        if execution_ids is not None:
            stmt = stmt.where(table.c.execution_id.in_(execution_ids))
        conn.execute(stmt)
    events = table_of(Event)
    count = 0
    last = 0
    # Read the log in pages and flush each page's projection writes before the next:
    # a fresh workset per page keeps memory bounded however large the log is.
    while True:
        query = select(events).where(events.c.position > last)
        if execution_ids is not None:
            query = query.where(events.c.execution_id.in_(execution_ids))
        rows = conn.execute(query.order_by(events.c.position).limit(2000)).all()
        if not rows:
            return count
        ws = Workset(conn)
        projector = Projector(ws)
        for row in rows:
            projector.apply(row_to_stored(row))
            count += 1
        ws.flush()
        last = rows[-1].position
