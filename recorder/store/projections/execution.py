"""The EXECUTION operation in the projections: the ``executions`` row, its op, its
timeout and retention timers, invocations and pauses."""

from __future__ import annotations

from typing import Any

from recorder.store.events import TERMINAL_EXECUTION_EVENTS, StoredEvent, compact_json
from recorder.store.projections.base import Handler, close_op, details, new_op, payload
from recorder.store.vocabulary import DAY_MS, EventType, ExecutionStatus, OperationStatus, OperationType, TimerKind
from recorder.store.workset import ExecRow, Workset


def _error_type_column(error_type: Any) -> str | None:
    """The list's error-type filter column (256 characters, no U+0000 on PostgreSQL); the
    whole ErrorType stays in ``error_json`` and the event, whoever wrote it (a handler's
    envelope, an imported history)."""
    if error_type is None:
        return None
    return str(error_type).replace("\x00", "")[:256]


def started(ws: Workset, ev: StoredEvent) -> None:
    """ExecutionStarted: the one event that creates its execution's row."""
    d = ev.details
    x = ev.extra or {}
    execution = ExecRow(
        execution_id=ev.execution_id,
        arn=x["Arn"],
        function_name=x["FunctionName"],
        function_version=x.get("FunctionVersion", "$LATEST"),
        name=x["ExecutionName"],
        status=ExecutionStatus.RUNNING,
        input_payload=payload(d.get("Input")),
        result=None,
        error_json=None,
        error_type=None,
        start_ms=ev.ts_ms,
        end_ms=None,
        execution_timeout=int(d.get("ExecutionTimeout") or 0),
        retention_days=int(x.get("RetentionDays", 14)),
        last_event_id=ev.event_id or 0,
        last_ts_ms=ev.ts_ms,
        invocation_count=0,
        op_count=0,
        parent_arn=x.get("ParentArn"),
        parent_op_id=x.get("ParentOpId"),
        imported=bool(x.get("Imported", False)),
        active_ms=0,
    )
    ws.add_execution(execution)
    op = new_op(ws, ev, execution, OperationType.EXECUTION, OperationStatus.STARTED)
    op.details_json = compact_json({"InputPayload": execution.input_payload})
    if execution.execution_timeout > 0 and not execution.imported:
        ws.set_timer(ev.execution_id, TimerKind.EXECUTION_TIMEOUT, "", ev.ts_ms + execution.execution_timeout * 1000)


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    status = TERMINAL_EXECUTION_EVENTS[ev.event_type]
    d = ev.details
    execution.status = status
    execution.end_ms = ev.ts_ms
    if status == ExecutionStatus.SUCCEEDED:
        execution.result = payload(d.get("Result"))
    else:
        err = payload(d.get("Error"))
        execution.error_json = compact_json(err) if err is not None else None
        execution.error_type = _error_type_column(err.get("ErrorType")) if isinstance(err, dict) else None
    op = ws.op(ev.execution_id, ev.execution_id)
    if op is not None:
        close_op(op, ev, status)
        ws.touch_op(op)
    # A closed execution waits for nothing but its retention purge.
    ws.clear_all_timers(ev.execution_id)
    if not execution.imported:
        ws.set_timer(ev.execution_id, TimerKind.PURGE, "", ev.ts_ms + execution.retention_days * DAY_MS)


def _invocation_completed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    execution.invocation_count += 1
    execution.active_ms += invocation_ms(ev.details)


def invocation_ms(d: dict[str, Any]) -> int:
    """An invocation's duration from its InvocationCompleted details (epoch ms)."""
    start, end = d.get("StartTimestamp"), d.get("EndTimestamp")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return int(end) - int(start)
    return 0


def _invocation_started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    return None


def _pause_change(ws: Workset, ev: StoredEvent, execution: ExecRow) -> None:
    """Pause bookkeeping lives in the EXECUTION op's details: the pause request
    (for GetDurableExecution's PauseDetails) and, while an effective pause holds the
    execution timeout, the time the timeout had left."""
    t = ev.event_type
    d = ev.details
    op = ws.op(ev.execution_id, ev.execution_id)
    assert op is not None
    held = details(op)
    if t == EventType.PAUSE_REQUESTED:
        execution.status = ExecutionStatus.PAUSING
        held["Pause"] = {k: d[k] for k in ("PauseRequestTimestamp", "Reason", "ExecutionTimeoutPaused") if k in d}
    elif t == EventType.PAUSE_CANCELLED:
        execution.status = ExecutionStatus.RUNNING
        held.pop("Pause", None)
    elif t == EventType.EXECUTION_PAUSED:
        execution.status = ExecutionStatus.PAUSED
        held["Pause"] = {k: d[k] for k in ("PauseRequestTimestamp", "Reason", "ExecutionTimeoutPaused") if k in d}
        if d.get("ExecutionTimeoutPaused", True) and execution.execution_timeout > 0:
            due = execution.start_ms + execution.execution_timeout * 1000 + int(held.get("TimeoutExtendedMs", 0))
            held["TimeoutRemainingMs"] = max(0, due - ev.ts_ms)
            held["PausedAtMs"] = ev.ts_ms
            ws.clear_timer(ev.execution_id, TimerKind.EXECUTION_TIMEOUT, "")
    else:  # ExecutionResumed
        execution.status = ExecutionStatus.RUNNING
        held.pop("Pause", None)
        remaining = held.pop("TimeoutRemainingMs", None)
        paused_at = held.pop("PausedAtMs", None)
        if remaining is not None and paused_at is not None:
            # The paused time extends the timeout, at most to 366 days after the start.
            cap = execution.start_ms + 366 * DAY_MS
            due = min(ev.ts_ms + int(remaining), cap)
            held["TimeoutExtendedMs"] = due - (execution.start_ms + execution.execution_timeout * 1000)
            ws.set_timer(ev.execution_id, TimerKind.EXECUTION_TIMEOUT, "", due)
    op.details_json = compact_json(held)
    ws.touch_op(op)


HANDLERS: dict[str, Handler] = {
    **{t: _closed for t in TERMINAL_EXECUTION_EVENTS},
    EventType.INVOCATION_COMPLETED: _invocation_completed,
    EventType.INVOCATION_STARTED: _invocation_started,
    **{
        t: _pause_change
        for t in (
            EventType.PAUSE_REQUESTED,
            EventType.PAUSE_CANCELLED,
            EventType.EXECUTION_PAUSED,
            EventType.EXECUTION_RESUMED,
        )
    },
}
