"""STEP operations in the projections: attempts, retries and their timers."""

from __future__ import annotations

from recorder.store.events import StoredEvent
from recorder.store.projections.base import Handler, close_op, existing_op, find_op, new_op, op_or_new, set_outcome
from recorder.store.vocabulary import EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import ExecRow, OpRow, Workset


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = find_op(ws, ev)
    if op is None:
        return new_op(ws, ev, execution, OperationType.STEP, OperationStatus.STARTED)
    op.status = OperationStatus.STARTED
    op.next_attempt_ms = None
    return op


def _outcome(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = op_or_new(ws, ev, execution, OperationType.STEP)
    retry = d.get("RetryDetails") or {}
    op.attempt = int(retry.get("CurrentAttempt", op.attempt + 1))
    succeeded = ev.event_type == EventType.STEP_SUCCEEDED
    set_outcome(op, ev, succeeded)
    delay = retry.get("NextAttemptDelaySeconds")
    if delay is not None:
        # RETRY: waits for its next attempt; READY keeps Result/Error/Attempt.
        op.status = OperationStatus.PENDING
        op.next_attempt_ms = ev.ts_ms + int(delay) * 1000
        ws.set_timer(ev.execution_id, TimerKind.RETRY, op.op_id, op.next_attempt_ms)
    else:
        close_op(op, ev, OperationStatus.SUCCEEDED if succeeded else OperationStatus.FAILED)
    return op


def _ready(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    op.status = OperationStatus.READY
    op.next_attempt_ms = None
    ws.clear_timer(ev.execution_id, TimerKind.RETRY, op.op_id)
    return op


HANDLERS: dict[str, Handler] = {
    EventType.STEP_STARTED: _started,
    EventType.STEP_SUCCEEDED: _outcome,
    EventType.STEP_FAILED: _outcome,
    EventType.STEP_READY: _ready,
}
