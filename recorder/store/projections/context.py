"""CONTEXT operations (child contexts, parallel and map branches) in the projections."""

from __future__ import annotations

from recorder.store.events import StoredEvent
from recorder.store.projections.base import Handler, close_op, new_op, op_or_new, set_outcome
from recorder.store.vocabulary import EventType, OperationStatus, OperationType
from recorder.store.workset import ExecRow, OpRow, Workset


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    return new_op(ws, ev, execution, OperationType.CONTEXT, OperationStatus.STARTED)


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = op_or_new(ws, ev, execution, OperationType.CONTEXT)
    succeeded = ev.event_type == EventType.CONTEXT_SUCCEEDED
    close_op(op, ev, OperationStatus.SUCCEEDED if succeeded else OperationStatus.FAILED)
    set_outcome(op, ev, succeeded)
    op.replay_children = (ev.extra or {}).get("ReplayChildren")
    return op


HANDLERS: dict[str, Handler] = {
    EventType.CONTEXT_STARTED: _started,
    EventType.CONTEXT_SUCCEEDED: _closed,
    EventType.CONTEXT_FAILED: _closed,
}
