"""WAIT operations in the projections: the scheduled end and its timer."""

from __future__ import annotations

from recorder.store.events import StoredEvent
from recorder.store.projections.base import Handler, close_op, dumps, existing_op, new_op
from recorder.store.vocabulary import TimerKind
from recorder.store.workset import ExecRow, OpRow, Workset


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = new_op(ws, ev, execution, "WAIT", "STARTED")
    due = int(d["ScheduledEndTimestamp"])
    op.details_json = dumps({"ScheduledEndTimestamp": due, "Duration": d.get("Duration")})
    ws.set_timer(ev.execution_id, TimerKind.WAIT, op.op_id, due)
    return op


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    close_op(op, ev, "SUCCEEDED" if ev.event_type == "WaitSucceeded" else "CANCELLED")
    ws.clear_timer(ev.execution_id, TimerKind.WAIT, op.op_id)
    return op


HANDLERS: dict[str, Handler] = {"WaitStarted": _started, "WaitSucceeded": _closed, "WaitCancelled": _closed}
