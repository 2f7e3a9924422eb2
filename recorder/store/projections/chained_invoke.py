"""CHAINED_INVOKE operations in the projections."""

from __future__ import annotations

from recorder.store.events import StoredEvent, compact_json
from recorder.store.projections.base import Handler, close_op, existing_op, new_op, set_outcome
from recorder.store.vocabulary import EventType, OperationStatus, OperationType
from recorder.store.workset import ExecRow, OpRow, Workset

_CLOSED: dict[str, OperationStatus] = {
    EventType.CHAINED_INVOKE_SUCCEEDED: OperationStatus.SUCCEEDED,
    EventType.CHAINED_INVOKE_FAILED: OperationStatus.FAILED,
    EventType.CHAINED_INVOKE_TIMED_OUT: OperationStatus.TIMED_OUT,
    EventType.CHAINED_INVOKE_STOPPED: OperationStatus.STOPPED,
}


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = new_op(ws, ev, execution, OperationType.CHAINED_INVOKE, OperationStatus.STARTED)
    op.details_json = compact_json(
        {k: d[k] for k in ("FunctionName", "DurableExecutionArn", "ExecutedVersion", "TenantId") if k in d}
    )
    return op


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    close_op(op, ev, _CLOSED[ev.event_type])
    set_outcome(op, ev, ev.event_type == EventType.CHAINED_INVOKE_SUCCEEDED)
    return op


HANDLERS: dict[str, Handler] = {EventType.CHAINED_INVOKE_STARTED: _started, **{t: _closed for t in _CLOSED}}
