"""CONTEXT operations (child contexts, parallel and map branches) in the projections."""

from __future__ import annotations

from recorder.store.events import StoredEvent
from recorder.store.projections.base import Handler, close_op, new_op, op_or_new, set_outcome
from recorder.store.workset import ExecRow, OpRow, Workset


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    return new_op(ws, ev, execution, "CONTEXT", "STARTED")


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = op_or_new(ws, ev, execution, "CONTEXT")
    succeeded = ev.event_type == "ContextSucceeded"
    close_op(op, ev, "SUCCEEDED" if succeeded else "FAILED")
    set_outcome(op, ev, succeeded)
    op.replay_children = (ev.extra or {}).get("ReplayChildren")
    return op


HANDLERS: dict[str, Handler] = {"ContextStarted": _started, "ContextSucceeded": _closed, "ContextFailed": _closed}
