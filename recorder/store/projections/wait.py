"""WAIT operations in the projections: the scheduled end and its timer."""

from __future__ import annotations

from recorder.store.events import StoredEvent, compact_json
from recorder.store.projections.base import Handler, close_op, existing_op, new_op
from recorder.store.vocabulary import EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import ExecRow, OpRow, Workset


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = new_op(ws, ev, execution, OperationType.WAIT, OperationStatus.STARTED)
    due = int(d["ScheduledEndTimestamp"])
    op.details_json = compact_json({"ScheduledEndTimestamp": due, "Duration": d.get("Duration")})
    ws.set_timer(ev.execution_id, TimerKind.WAIT, op.op_id, due)
    return op


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    close_op(
        op, ev, OperationStatus.SUCCEEDED if ev.event_type == EventType.WAIT_SUCCEEDED else OperationStatus.CANCELLED
    )
    ws.clear_timer(ev.execution_id, TimerKind.WAIT, op.op_id)
    return op


HANDLERS: dict[str, Handler] = {
    EventType.WAIT_STARTED: _started,
    EventType.WAIT_SUCCEEDED: _closed,
    EventType.WAIT_CANCELLED: _closed,
}
