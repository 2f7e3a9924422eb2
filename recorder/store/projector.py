"""Fold log events into the projections (executions, operations, callbacks, timers).

The live path and ``rebuild`` call the same ``apply``, in the same transaction as
the append, so a rebuild from the log yields identical rows (DESIGN invariant 4).
Everything a projection holds must therefore be derivable from the event and its
``extra``: never read the clock or engine state here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from recorder.store.events import (
    CALLBACK_HEARTBEAT,
    INVOCATION_STARTED,
    STEP_READY,
    TERMINAL_EXECUTION_EVENTS,
    StoredEvent,
)
from recorder.store.models import Callback, Event, Execution, Operation, Timer

DAY_MS = 86_400_000

# Timer kinds.
WAIT = "wait"
RETRY = "retry"
CALLBACK_TIMEOUT = "callback-timeout"
CALLBACK_HEARTBEAT_TIMEOUT = "callback-heartbeat"
EXECUTION_TIMEOUT = "execution-timeout"
PURGE = "purge"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _payload(envelope: Any) -> Any:
    return envelope.get("Payload") if isinstance(envelope, dict) else None


class Projector:
    """Applies events of one execution; ``ops`` caches its operation rows."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # Rows added in this transaction are not in the identity map until a flush,
        # so the projector remembers what it created or loaded (None = deleted).
        self._cache: dict[tuple[type, object], Any] = {}
        # Due times of timers set in this transaction, so the engine can wake for them.
        self.timer_dues: list[int] = []

    def _get(self, model: type, key: object) -> Any:
        ck = (model, key)
        if ck in self._cache:
            return self._cache[ck]
        row = self.session.get(model, key)
        self._cache[ck] = row
        return row

    def _add(self, model: type, key: object, row: Any) -> Any:
        self._cache[(model, key)] = row
        self.session.add(row)
        return row

    def remember(self, row: Any) -> None:
        """Let callers hand over rows they already loaded (saves a SELECT)."""
        if isinstance(row, Operation):
            self._cache[(Operation, (row.execution_id, row.op_id))] = row
        elif isinstance(row, Execution):
            self._cache[(Execution, row.execution_id)] = row

    # --- helpers ------------------------------------------------------------------

    def _op(self, ev: StoredEvent) -> Operation | None:
        assert ev.op_id is not None
        return self._get(Operation, (ev.execution_id, ev.op_id))

    def _new_op(self, ev: StoredEvent, execution: Execution, op_type: str, status: str) -> Operation:
        body = ev.body
        op = Operation(
            execution_id=ev.execution_id,
            op_id=ev.op_id,
            seq=execution.op_count,
            type=op_type,
            sub_type=body.get("SubType"),
            name=body.get("Name"),
            parent_id=body.get("ParentId"),
            status=status,
            start_ms=ev.ts_ms,
            end_ms=None,
            attempt=0,
            next_attempt_ms=None,
            result=None,
            error_json=None,
            replay_children=None,
            details_json=None,
            changed_position=ev.position,
        )
        execution.op_count += 1
        return self._add(Operation, (ev.execution_id, ev.op_id), op)

    def _op_or_new(self, ev: StoredEvent, execution: Execution, op_type: str) -> Operation:
        op = self._op(ev)
        if op is None:
            op = self._new_op(ev, execution, op_type, "STARTED")
        return op

    def _set_timer(self, execution_id: str, kind: str, op_id: str, due_ms: int) -> None:
        key = (execution_id, kind, op_id)
        self.timer_dues.append(due_ms)
        timer = self._get(Timer, key)
        if timer is None:
            self._add(Timer, key, Timer(execution_id=execution_id, kind=kind, op_id=op_id, due_ms=due_ms))
        else:
            timer.due_ms = due_ms

    def _clear_timer(self, execution_id: str, kind: str, op_id: str) -> None:
        key = (execution_id, kind, op_id)
        timer = self._get(Timer, key)
        if timer is not None:
            if timer in self.session.new:
                self.session.expunge(timer)
            else:
                self.session.delete(timer)
            self._cache[(Timer, key)] = None

    @staticmethod
    def _details(op: Operation) -> dict[str, Any]:
        return json.loads(op.details_json) if op.details_json else {}

    def _close_op(self, op: Operation, ev: StoredEvent, status: str) -> None:
        op.status = status
        op.end_ms = ev.ts_ms
        op.next_attempt_ms = None
        op.changed_position = ev.position

    # --- apply ----------------------------------------------------------------------

    def apply(self, ev: StoredEvent) -> None:
        execution = self._get(Execution, ev.execution_id)
        t = ev.event_type
        d = ev.details
        if t == "ExecutionStarted":
            self._execution_started(ev)
            return
        assert execution is not None, f"event {t} for unknown execution {ev.execution_id}"
        if ev.event_id is not None:
            execution.last_event_id = ev.event_id
        execution.last_ts_ms = max(execution.last_ts_ms, ev.ts_ms)

        if t in TERMINAL_EXECUTION_EVENTS:
            self._execution_closed(ev, execution, TERMINAL_EXECUTION_EVENTS[t])
        elif t == "InvocationCompleted":
            execution.invocation_count += 1
        elif t == INVOCATION_STARTED:
            pass
        elif t == "ContextStarted":
            self._new_op(ev, execution, "CONTEXT", "STARTED")
        elif t in ("ContextSucceeded", "ContextFailed"):
            op = self._op_or_new(ev, execution, "CONTEXT")
            self._close_op(op, ev, "SUCCEEDED" if t == "ContextSucceeded" else "FAILED")
            if t == "ContextSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                err = _payload(d.get("Error"))
                op.error_json = _dumps(err) if err is not None else None
            op.replay_children = (ev.extra or {}).get("ReplayChildren")
        elif t == "StepStarted":
            op = self._op(ev)
            if op is None:
                self._new_op(ev, execution, "STEP", "STARTED")
            else:
                op.status = "STARTED"
                op.next_attempt_ms = None
                op.changed_position = ev.position
        elif t in ("StepSucceeded", "StepFailed"):
            self._step_outcome(ev, execution)
        elif t == STEP_READY:
            op = self._op(ev)
            assert op is not None
            op.status = "READY"
            op.next_attempt_ms = None
            op.changed_position = ev.position
            self._clear_timer(ev.execution_id, RETRY, op.op_id)
        elif t == "WaitStarted":
            op = self._new_op(ev, execution, "WAIT", "STARTED")
            due = int(d["ScheduledEndTimestamp"])
            op.details_json = _dumps({"ScheduledEndTimestamp": due, "Duration": d.get("Duration")})
            self._set_timer(ev.execution_id, WAIT, op.op_id, due)
        elif t in ("WaitSucceeded", "WaitCancelled"):
            op = self._op(ev)
            assert op is not None
            self._close_op(op, ev, "SUCCEEDED" if t == "WaitSucceeded" else "CANCELLED")
            self._clear_timer(ev.execution_id, WAIT, op.op_id)
        elif t == "CallbackStarted":
            self._callback_started(ev, execution)
        elif t == CALLBACK_HEARTBEAT:
            cb = self._get(Callback, d["CallbackId"])
            assert cb is not None
            cb.last_heartbeat_ms = ev.ts_ms
            if cb.heartbeat_timeout_seconds > 0:
                self._set_timer(
                    ev.execution_id, CALLBACK_HEARTBEAT_TIMEOUT, cb.op_id, ev.ts_ms + cb.heartbeat_timeout_seconds * 1000
                )
        elif t in ("CallbackSucceeded", "CallbackFailed", "CallbackTimedOut"):
            op = self._op(ev)
            assert op is not None
            status = {"CallbackSucceeded": "SUCCEEDED", "CallbackFailed": "FAILED", "CallbackTimedOut": "TIMED_OUT"}[t]
            self._close_op(op, ev, status)
            if t == "CallbackSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                err = _payload(d.get("Error"))
                op.error_json = _dumps(err) if err is not None else None
            cb_id = self._details(op).get("CallbackId")
            cb = self._get(Callback, cb_id) if cb_id else None
            if cb is not None:
                cb.status = status
                cb.end_ms = ev.ts_ms
            self._clear_timer(ev.execution_id, CALLBACK_TIMEOUT, op.op_id)
            self._clear_timer(ev.execution_id, CALLBACK_HEARTBEAT_TIMEOUT, op.op_id)
        elif t == "ChainedInvokeStarted":
            op = self._new_op(ev, execution, "CHAINED_INVOKE", "STARTED")
            details = {k: d[k] for k in ("FunctionName", "DurableExecutionArn", "ExecutedVersion", "TenantId") if k in d}
            op.details_json = _dumps(details)
        elif t.startswith("ChainedInvoke"):
            op = self._op(ev)
            assert op is not None
            status = {
                "ChainedInvokeSucceeded": "SUCCEEDED",
                "ChainedInvokeFailed": "FAILED",
                "ChainedInvokeTimedOut": "TIMED_OUT",
                "ChainedInvokeStopped": "STOPPED",
            }[t]
            self._close_op(op, ev, status)
            if t == "ChainedInvokeSucceeded":
                op.result = _payload(d.get("Result"))
            else:
                err = _payload(d.get("Error"))
                op.error_json = _dumps(err) if err is not None else None
        else:
            raise ValueError(f"projector does not know event type {t!r}")

    def _execution_started(self, ev: StoredEvent) -> None:
        d = ev.details
        x = ev.extra or {}
        execution = Execution(
            execution_id=ev.execution_id,
            arn=x["Arn"],
            function_name=x["FunctionName"],
            function_version=x.get("FunctionVersion", "$LATEST"),
            name=x["ExecutionName"],
            status="RUNNING",
            input_payload=_payload(d.get("Input")),
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
        )
        self._add(Execution, ev.execution_id, execution)
        op = self._new_op(ev, execution, "EXECUTION", "STARTED")
        op.details_json = _dumps({"InputPayload": execution.input_payload})
        if execution.execution_timeout > 0 and not execution.imported:
            self._set_timer(ev.execution_id, EXECUTION_TIMEOUT, "", ev.ts_ms + execution.execution_timeout * 1000)

    def _execution_closed(self, ev: StoredEvent, execution: Execution, status: str) -> None:
        d = ev.details
        execution.status = status
        execution.end_ms = ev.ts_ms
        if status == "SUCCEEDED":
            execution.result = _payload(d.get("Result"))
        else:
            err = _payload(d.get("Error"))
            execution.error_json = _dumps(err) if err is not None else None
            execution.error_type = (err or {}).get("ErrorType") if isinstance(err, dict) else None
        op = self._get(Operation, (ev.execution_id, ev.execution_id))
        if op is not None:
            self._close_op(op, ev, status)
        # A closed execution waits for nothing but its retention purge.
        self.session.flush()
        self.session.execute(
            delete(Timer).where(Timer.execution_id == ev.execution_id).execution_options(synchronize_session="fetch")
        )
        for ck in [k for k in self._cache if k[0] is Timer and k[1][0] == ev.execution_id]:
            self._cache[ck] = None
        if not execution.imported:
            key = (ev.execution_id, PURGE, "")
            self.timer_dues.append(ev.ts_ms + execution.retention_days * DAY_MS)
            self._add(Timer, key, Timer(execution_id=ev.execution_id, kind=PURGE, op_id="",
                                        due_ms=ev.ts_ms + execution.retention_days * DAY_MS))

    def _step_outcome(self, ev: StoredEvent, execution: Execution) -> None:
        d = ev.details
        op = self._op_or_new(ev, execution, "STEP")
        retry = d.get("RetryDetails") or {}
        op.attempt = int(retry.get("CurrentAttempt", op.attempt + 1))
        op.changed_position = ev.position
        if ev.event_type == "StepSucceeded":
            op.result = _payload(d.get("Result"))
        else:
            err = _payload(d.get("Error"))
            op.error_json = _dumps(err) if err is not None else None
        delay = retry.get("NextAttemptDelaySeconds")
        if delay is not None:
            # RETRY: waits for its next attempt; READY keeps Result/Error/Attempt.
            op.status = "PENDING"
            op.next_attempt_ms = ev.ts_ms + int(delay) * 1000
            self._set_timer(ev.execution_id, RETRY, op.op_id, op.next_attempt_ms)
        else:
            self._close_op(op, ev, "SUCCEEDED" if ev.event_type == "StepSucceeded" else "FAILED")

    def _callback_started(self, ev: StoredEvent, execution: Execution) -> None:
        d = ev.details
        op = self._new_op(ev, execution, "CALLBACK", "STARTED")
        cb_id = d["CallbackId"]
        op.details_json = _dumps({"CallbackId": cb_id})
        timeout = int(d.get("Timeout") or 0)
        heartbeat = int(d.get("HeartbeatTimeout") or 0)
        self._add(
            Callback, cb_id,
            Callback(
                callback_id=cb_id,
                execution_id=ev.execution_id,
                op_id=op.op_id,
                status="STARTED",
                timeout_seconds=timeout,
                heartbeat_timeout_seconds=heartbeat,
                started_ms=ev.ts_ms,
                last_heartbeat_ms=None,
                end_ms=None,
            )
        )
        if timeout > 0:
            self._set_timer(ev.execution_id, CALLBACK_TIMEOUT, op.op_id, ev.ts_ms + timeout * 1000)
        if heartbeat > 0:
            self._set_timer(ev.execution_id, CALLBACK_HEARTBEAT_TIMEOUT, op.op_id, ev.ts_ms + heartbeat * 1000)


def rebuild(session: Session, execution_ids: list[str] | None = None) -> int:
    """Drop and recompute the projections from the log. Returns events replayed."""
    from recorder.store.log import row_to_stored

    for model in (Callback, Timer, Operation, Execution):
        stmt = delete(model)
        if execution_ids is not None:
            stmt = stmt.where(model.execution_id.in_(execution_ids))
        session.execute(stmt)
    session.flush()
    query = select(Event).order_by(Event.position)
    if execution_ids is not None:
        query = query.where(Event.execution_id.in_(execution_ids))
    projector = Projector(session)
    count = 0
    for row in session.scalars(query).yield_per(2000):
        projector.apply(row_to_stored(row))
        count += 1
        if count % 2000 == 0:
            session.flush()
    session.flush()
    return count
