"""Fold log events into the projections (executions, operations, callbacks, timers).

The live path and ``rebuild`` call the same ``apply`` on a ``Workset``, in the same
transaction as the append, so a rebuild from the log yields identical rows (DESIGN
invariant 4). Everything a projection holds must therefore be derivable from the
event and its ``extra``: never read the clock or engine state here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, select

from recorder.store.events import (
    CALLBACK_HEARTBEAT,
    CALLBACK_RECEIVED,
    INVOCATION_STARTED,
    PAUSE_CANCELLED,
    PAUSE_REQUESTED,
    STEP_READY,
    TERMINAL_EXECUTION_EVENTS,
    StoredEvent,
)
from recorder.store.error_index import KINDS, occurrence
from recorder.store.models import ErrorOccurrence, Event
from recorder.store.workset import CALLBACKS, EXECUTIONS, OPERATIONS, TIMERS, CallbackRow, ExecRow, OpRow, Workset

DAY_MS = 86_400_000

# Timer kinds.
WAIT = "wait"
RETRY = "retry"
CALLBACK_TIMEOUT = "callback-timeout"
CALLBACK_HEARTBEAT_TIMEOUT = "callback-heartbeat"
EXECUTION_TIMEOUT = "execution-timeout"
PURGE = "purge"

_CLOSED_CHAINED = {
    "ChainedInvokeSucceeded": "SUCCEEDED",
    "ChainedInvokeFailed": "FAILED",
    "ChainedInvokeTimedOut": "TIMED_OUT",
    "ChainedInvokeStopped": "STOPPED",
}
_CLOSED_CALLBACK = {"CallbackSucceeded": "SUCCEEDED", "CallbackFailed": "FAILED", "CallbackTimedOut": "TIMED_OUT"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _payload(envelope: Any) -> Any:
    return envelope.get("Payload") if isinstance(envelope, dict) else None


def _error_type_column(error_type: Any) -> str | None:
    """The list's error-type filter column (256 characters, no U+0000 on PostgreSQL); the
    whole ErrorType stays in ``error_json`` and the event, whoever wrote it (a handler's
    envelope, an imported history)."""
    if error_type is None:
        return None
    return str(error_type).replace("\x00", "")[:256]


def _error_json(envelope: Any) -> str | None:
    err = _payload(envelope)
    return _dumps(err) if err is not None else None


class Projector:
    def __init__(self, ws: Workset) -> None:
        self.ws = ws

    # --- helpers ------------------------------------------------------------------

    def _op(self, ev: StoredEvent) -> OpRow | None:
        assert ev.op_id is not None
        return self.ws.op(ev.execution_id, ev.op_id)

    def _new_op(self, ev: StoredEvent, execution: ExecRow, op_type: str, status: str) -> OpRow:
        body = ev.body
        assert ev.op_id is not None
        op = OpRow(
            execution_id=ev.execution_id, op_id=ev.op_id, seq=execution.op_count, type=op_type,
            sub_type=body.get("SubType"), name=body.get("Name"), parent_id=body.get("ParentId"), status=status,
            start_ms=ev.ts_ms, end_ms=None, attempt=0, next_attempt_ms=None, result=None, error_json=None,
            replay_children=None, details_json=None,
        )
        execution.op_count += 1
        self.ws.add_op(op)
        return op

    def _op_or_new(self, ev: StoredEvent, execution: ExecRow, op_type: str) -> OpRow:
        return self._op(ev) or self._new_op(ev, execution, op_type, "STARTED")

    def _close_op(self, op: OpRow, ev: StoredEvent, status: str) -> None:
        op.status = status
        op.end_ms = ev.ts_ms
        op.next_attempt_ms = None

    @staticmethod
    def _details(op: OpRow) -> dict[str, Any]:
        return json.loads(op.details_json) if op.details_json else {}

    # --- apply ----------------------------------------------------------------------

    def apply(self, ev: StoredEvent) -> None:
        t = ev.event_type
        if t == "ExecutionStarted":
            self._execution_started(ev)
            return
        ws = self.ws
        execution = ws.execution(ev.execution_id)
        assert execution is not None, f"event {t} for unknown execution {ev.execution_id}"
        if ev.event_id is not None:
            execution.last_event_id = ev.event_id
        execution.last_ts_ms = max(execution.last_ts_ms, ev.ts_ms)
        ws.touch_execution(execution)
        d = ev.details
        eid = ev.execution_id
        op: OpRow | None

        if t in KINDS:
            found = occurrence(ev, execution.function_name)
            if found is not None:
                ws.add_occurrence(found)
        if t in TERMINAL_EXECUTION_EVENTS:
            self._execution_closed(ev, execution, TERMINAL_EXECUTION_EVENTS[t])
            return
        if t == "InvocationCompleted":
            execution.invocation_count += 1
            return
        if t == INVOCATION_STARTED:
            return
        if t in (PAUSE_REQUESTED, PAUSE_CANCELLED, "ExecutionPaused", "ExecutionResumed"):
            self._pause_change(ev, execution)
            return
        if t == CALLBACK_RECEIVED:
            # Closed for the API (a second result is refused) and for its timers; the
            # operation completes when the running invocation has ended.
            cb = ws.callback(d["CallbackId"])
            assert cb is not None
            cb.status = "RECEIVED"
            ws.touch_callback(cb)
            ws.clear_timer(eid, CALLBACK_TIMEOUT, cb.op_id)
            ws.clear_timer(eid, CALLBACK_HEARTBEAT_TIMEOUT, cb.op_id)
            return
        if t == CALLBACK_HEARTBEAT:
            cb = ws.callback(d["CallbackId"])
            assert cb is not None
            cb.last_heartbeat_ms = ev.ts_ms
            ws.touch_callback(cb)
            if cb.heartbeat_timeout_seconds > 0:
                ws.set_timer(eid, CALLBACK_HEARTBEAT_TIMEOUT, cb.op_id, ev.ts_ms + cb.heartbeat_timeout_seconds * 1000)
            return

        if t == "ContextStarted":
            op = self._new_op(ev, execution, "CONTEXT", "STARTED")
        elif t in ("ContextSucceeded", "ContextFailed"):
            op = self._op_or_new(ev, execution, "CONTEXT")
            self._close_op(op, ev, "SUCCEEDED" if t == "ContextSucceeded" else "FAILED")
            if t == "ContextSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                op.error_json = _error_json(d.get("Error"))
            op.replay_children = (ev.extra or {}).get("ReplayChildren")
        elif t == "StepStarted":
            op = self._op(ev)
            if op is None:
                op = self._new_op(ev, execution, "STEP", "STARTED")
            else:
                op.status = "STARTED"
                op.next_attempt_ms = None
        elif t in ("StepSucceeded", "StepFailed"):
            op = self._step_outcome(ev, execution)
        elif t == STEP_READY:
            op = self._op(ev)
            assert op is not None
            op.status = "READY"
            op.next_attempt_ms = None
            ws.clear_timer(eid, RETRY, op.op_id)
        elif t == "WaitStarted":
            op = self._new_op(ev, execution, "WAIT", "STARTED")
            due = int(d["ScheduledEndTimestamp"])
            op.details_json = _dumps({"ScheduledEndTimestamp": due, "Duration": d.get("Duration")})
            ws.set_timer(eid, WAIT, op.op_id, due)
        elif t in ("WaitSucceeded", "WaitCancelled"):
            op = self._op(ev)
            assert op is not None
            self._close_op(op, ev, "SUCCEEDED" if t == "WaitSucceeded" else "CANCELLED")
            ws.clear_timer(eid, WAIT, op.op_id)
        elif t == "CallbackStarted":
            op = self._callback_started(ev, execution)
        elif t in _CLOSED_CALLBACK:
            op = self._op(ev)
            assert op is not None
            status = _CLOSED_CALLBACK[t]
            self._close_op(op, ev, status)
            if t == "CallbackSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                op.error_json = _error_json(d.get("Error"))
            cb_id = self._details(op).get("CallbackId")
            cb = ws.callback(cb_id) if cb_id else None
            if cb is not None:
                cb.status = status
                cb.end_ms = ev.ts_ms
                ws.touch_callback(cb)
            ws.clear_timer(eid, CALLBACK_TIMEOUT, op.op_id)
            ws.clear_timer(eid, CALLBACK_HEARTBEAT_TIMEOUT, op.op_id)
        elif t == "ChainedInvokeStarted":
            op = self._new_op(ev, execution, "CHAINED_INVOKE", "STARTED")
            op.details_json = _dumps({k: d[k] for k in ("FunctionName", "DurableExecutionArn", "ExecutedVersion",
                                                        "TenantId") if k in d})
        elif t in _CLOSED_CHAINED:
            op = self._op(ev)
            assert op is not None
            self._close_op(op, ev, _CLOSED_CHAINED[t])
            if t == "ChainedInvokeSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                op.error_json = _error_json(d.get("Error"))
        else:
            raise ValueError(f"projector does not know event type {t!r}")
        ws.touch_op(op)

    def _execution_started(self, ev: StoredEvent) -> None:
        d = ev.details
        x = ev.extra or {}
        execution = ExecRow(
            execution_id=ev.execution_id, arn=x["Arn"], function_name=x["FunctionName"],
            function_version=x.get("FunctionVersion", "$LATEST"), name=x["ExecutionName"], status="RUNNING",
            input_payload=_payload(d.get("Input")), result=None, error_json=None, error_type=None,
            start_ms=ev.ts_ms, end_ms=None, execution_timeout=int(d.get("ExecutionTimeout") or 0),
            retention_days=int(x.get("RetentionDays", 14)), last_event_id=ev.event_id or 0, last_ts_ms=ev.ts_ms,
            invocation_count=0, op_count=0, parent_arn=x.get("ParentArn"), parent_op_id=x.get("ParentOpId"),
            imported=bool(x.get("Imported", False)),
        )
        self.ws.add_execution(execution)
        op = self._new_op(ev, execution, "EXECUTION", "STARTED")
        op.details_json = _dumps({"InputPayload": execution.input_payload})
        if execution.execution_timeout > 0 and not execution.imported:
            self.ws.set_timer(ev.execution_id, EXECUTION_TIMEOUT, "", ev.ts_ms + execution.execution_timeout * 1000)

    def _execution_closed(self, ev: StoredEvent, execution: ExecRow, status: str) -> None:
        d = ev.details
        execution.status = status
        execution.end_ms = ev.ts_ms
        if status == "SUCCEEDED":
            execution.result = _payload(d.get("Result"))
        else:
            err = _payload(d.get("Error"))
            execution.error_json = _dumps(err) if err is not None else None
            execution.error_type = _error_type_column(err.get("ErrorType")) if isinstance(err, dict) else None
        op = self.ws.op(ev.execution_id, ev.execution_id)
        if op is not None:
            self._close_op(op, ev, status)
            self.ws.touch_op(op)
        # A closed execution waits for nothing but its retention purge.
        self.ws.clear_all_timers(ev.execution_id)
        if not execution.imported:
            self.ws.set_timer(ev.execution_id, PURGE, "", ev.ts_ms + execution.retention_days * DAY_MS)

    def _pause_change(self, ev: StoredEvent, execution: ExecRow) -> None:
        """Pause bookkeeping lives in the EXECUTION op's details: the pause request
        (for GetDurableExecution's PauseDetails) and, while an effective pause holds the
        execution timeout, the time the timeout had left."""
        t = ev.event_type
        d = ev.details
        op = self.ws.op(ev.execution_id, ev.execution_id)
        assert op is not None
        details = self._details(op)
        if t == PAUSE_REQUESTED:
            execution.status = "PAUSING"
            details["Pause"] = {k: d[k] for k in ("PauseRequestTimestamp", "Reason", "ExecutionTimeoutPaused") if k in d}
        elif t == PAUSE_CANCELLED:
            execution.status = "RUNNING"
            details.pop("Pause", None)
        elif t == "ExecutionPaused":
            execution.status = "PAUSED"
            details["Pause"] = {k: d[k] for k in ("PauseRequestTimestamp", "Reason", "ExecutionTimeoutPaused") if k in d}
            if d.get("ExecutionTimeoutPaused", True) and execution.execution_timeout > 0:
                due = execution.start_ms + execution.execution_timeout * 1000 + int(details.get("TimeoutExtendedMs", 0))
                details["TimeoutRemainingMs"] = max(0, due - ev.ts_ms)
                details["PausedAtMs"] = ev.ts_ms
                self.ws.clear_timer(ev.execution_id, EXECUTION_TIMEOUT, "")
        else:  # ExecutionResumed
            execution.status = "RUNNING"
            details.pop("Pause", None)
            remaining = details.pop("TimeoutRemainingMs", None)
            paused_at = details.pop("PausedAtMs", None)
            if remaining is not None and paused_at is not None:
                # The paused time extends the timeout, at most to 366 days after the start.
                cap = execution.start_ms + 366 * DAY_MS
                due = min(ev.ts_ms + int(remaining), cap)
                details["TimeoutExtendedMs"] = due - (execution.start_ms + execution.execution_timeout * 1000)
                self.ws.set_timer(ev.execution_id, EXECUTION_TIMEOUT, "", due)
        op.details_json = _dumps(details)
        self.ws.touch_op(op)

    def _step_outcome(self, ev: StoredEvent, execution: ExecRow) -> OpRow:
        d = ev.details
        op = self._op_or_new(ev, execution, "STEP")
        retry = d.get("RetryDetails") or {}
        op.attempt = int(retry.get("CurrentAttempt", op.attempt + 1))
        if ev.event_type == "StepSucceeded":
            op.result = _payload(d.get("Result"))
        else:
            op.error_json = _error_json(d.get("Error"))
        delay = retry.get("NextAttemptDelaySeconds")
        if delay is not None:
            # RETRY: waits for its next attempt; READY keeps Result/Error/Attempt.
            op.status = "PENDING"
            op.next_attempt_ms = ev.ts_ms + int(delay) * 1000
            self.ws.set_timer(ev.execution_id, RETRY, op.op_id, op.next_attempt_ms)
        else:
            self._close_op(op, ev, "SUCCEEDED" if ev.event_type == "StepSucceeded" else "FAILED")
        return op

    def _callback_started(self, ev: StoredEvent, execution: ExecRow) -> OpRow:
        d = ev.details
        op = self._new_op(ev, execution, "CALLBACK", "STARTED")
        cb_id = d["CallbackId"]
        op.details_json = _dumps({"CallbackId": cb_id})
        timeout = int(d.get("Timeout") or 0)
        heartbeat = int(d.get("HeartbeatTimeout") or 0)
        self.ws.add_callback(CallbackRow(
            callback_id=cb_id, execution_id=ev.execution_id, op_id=op.op_id, status="STARTED",
            timeout_seconds=timeout, heartbeat_timeout_seconds=heartbeat, started_ms=ev.ts_ms,
            last_heartbeat_ms=None, end_ms=None))
        if timeout > 0:
            self.ws.set_timer(ev.execution_id, CALLBACK_TIMEOUT, op.op_id, ev.ts_ms + timeout * 1000)
        if heartbeat > 0:
            self.ws.set_timer(ev.execution_id, CALLBACK_HEARTBEAT_TIMEOUT, op.op_id, ev.ts_ms + heartbeat * 1000)
        return op


def rebuild(conn: Connection, execution_ids: list[str] | None = None) -> int:
    """Drop and recompute the projections (error occurrences included) from the log.
    Returns events replayed."""
    from recorder.store.log import row_to_stored

    for table in (CALLBACKS, TIMERS, OPERATIONS, EXECUTIONS, ErrorOccurrence.__table__):
        stmt = delete(table)
        if execution_ids is not None:
            stmt = stmt.where(table.c.execution_id.in_(execution_ids))
        conn.execute(stmt)
    events = Event.__table__
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
