"""CALLBACK operations in the projections: the ``callbacks`` row and its two timers."""

from __future__ import annotations

from recorder.store.events import StoredEvent, compact_json
from recorder.store.projections.base import Handler, close_op, details, existing_op, new_op, set_outcome
from recorder.store.vocabulary import CallbackStatus, EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import CallbackRow, ExecRow, OpRow, Workset

_CLOSED: dict[str, tuple[OperationStatus, CallbackStatus]] = {
    EventType.CALLBACK_SUCCEEDED: (OperationStatus.SUCCEEDED, CallbackStatus.SUCCEEDED),
    EventType.CALLBACK_FAILED: (OperationStatus.FAILED, CallbackStatus.FAILED),
    EventType.CALLBACK_TIMED_OUT: (OperationStatus.TIMED_OUT, CallbackStatus.TIMED_OUT),
}


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = new_op(ws, ev, execution, OperationType.CALLBACK, OperationStatus.STARTED)
    cb_id = d["CallbackId"]
    op.details_json = compact_json({"CallbackId": cb_id})
    timeout = int(d.get("Timeout") or 0)
    heartbeat = int(d.get("HeartbeatTimeout") or 0)
    ws.add_callback(
        CallbackRow(
            callback_id=cb_id,
            execution_id=ev.execution_id,
            op_id=op.op_id,
            status=CallbackStatus.STARTED,
            timeout_seconds=timeout,
            heartbeat_timeout_seconds=heartbeat,
            started_ms=ev.ts_ms,
            last_heartbeat_ms=None,
            end_ms=None,
        )
    )
    if timeout > 0:
        ws.set_timer(ev.execution_id, TimerKind.CALLBACK_TIMEOUT, op.op_id, ev.ts_ms + timeout * 1000)
    if heartbeat > 0:
        ws.set_timer(ev.execution_id, TimerKind.CALLBACK_HEARTBEAT_TIMEOUT, op.op_id, ev.ts_ms + heartbeat * 1000)
    return op


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    status, cb_status = _CLOSED[ev.event_type]
    close_op(op, ev, status)
    set_outcome(op, ev, ev.event_type == EventType.CALLBACK_SUCCEEDED)
    cb_id = details(op).get("CallbackId")
    cb = ws.callback(cb_id) if cb_id else None
    if cb is not None:
        cb.status = cb_status
        cb.end_ms = ev.ts_ms
        ws.touch_callback(cb)
    ws.clear_timer(ev.execution_id, TimerKind.CALLBACK_TIMEOUT, op.op_id)
    ws.clear_timer(ev.execution_id, TimerKind.CALLBACK_HEARTBEAT_TIMEOUT, op.op_id)
    return op


def _received(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    """Closed for the API (a second result is refused) and for its timers; the operation
    completes when the running invocation has ended."""
    cb = ws.callback(ev.details["CallbackId"])
    assert cb is not None
    cb.status = CallbackStatus.RECEIVED
    ws.touch_callback(cb)
    ws.clear_timer(ev.execution_id, TimerKind.CALLBACK_TIMEOUT, cb.op_id)
    ws.clear_timer(ev.execution_id, TimerKind.CALLBACK_HEARTBEAT_TIMEOUT, cb.op_id)


def _heartbeat(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    cb = ws.callback(ev.details["CallbackId"])
    assert cb is not None
    cb.last_heartbeat_ms = ev.ts_ms
    ws.touch_callback(cb)
    if cb.heartbeat_timeout_seconds > 0:
        ws.set_timer(
            ev.execution_id,
            TimerKind.CALLBACK_HEARTBEAT_TIMEOUT,
            cb.op_id,
            ev.ts_ms + cb.heartbeat_timeout_seconds * 1000,
        )


HANDLERS: dict[str, Handler] = {
    EventType.CALLBACK_STARTED: _started,
    **{t: _closed for t in _CLOSED},
    EventType.CALLBACK_RECEIVED: _received,
    EventType.CALLBACK_HEARTBEAT: _heartbeat,
}
