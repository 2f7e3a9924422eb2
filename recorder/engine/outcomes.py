"""Events several concerns append: op outcomes decided by the backend, invocation ends, pauses."""

from __future__ import annotations

import hashlib
from typing import Any

from recorder.engine.boundary import InvocationOutcome, loads
from recorder.store.events import STEP_READY, NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.projector import CALLBACK_HEARTBEAT_TIMEOUT, CALLBACK_TIMEOUT, RETRY, WAIT
from recorder.store.workset import ExecRow, OpRow, Workset
from recorder.wire import Update


def identity(op: OpRow) -> OpIdentity:
    return OpIdentity(op.op_id, op.type, op.sub_type, op.name, op.parent_id)


def exec_ident(execution: ExecRow) -> OpIdentity:
    return OpIdentity(execution.execution_id, "EXECUTION", name=execution.name)


def update_error(u: Update) -> dict[str, Any] | None:
    return u.error.to_dict() if u.error is not None else None


def child_name(execution_id: str, op_id: str) -> str:
    # Deterministic, so a replayed START can never start a second child.
    return "chained-" + hashlib.sha256(f"{execution_id}/{op_id}".encode()).hexdigest()[:40]


def callback_outcome(op: OpRow, details: dict[str, Any]) -> NewEvent:
    if details["Success"]:
        return NewEvent("CallbackSucceeded", identity(op), {"Result": details["Result"]})
    return NewEvent("CallbackFailed", identity(op), {"Error": details["Error"]})


def chained_outcome(op: OpRow, child: ExecRow) -> NewEvent:
    ident = identity(op)
    error = loads(child.error_json, None)
    if child.status == "SUCCEEDED":
        return NewEvent("ChainedInvokeSucceeded", ident, {"Result": payload_envelope(child.result)})
    if child.status == "FAILED":
        return NewEvent("ChainedInvokeFailed", ident, {"Error": error_envelope(error)})
    if child.status == "TIMED_OUT":
        return NewEvent("ChainedInvokeTimedOut", ident, {"Error": error_envelope(
            error or {"ErrorType": "ChainedInvoke.Timeout", "ErrorMessage": "Chained execution timed out"})})
    return NewEvent("ChainedInvokeStopped", ident, {"Error": error_envelope(error)})


def timer_event(kind: str, row: OpRow) -> NewEvent | None:
    ident = identity(row)
    if kind == WAIT and row.status == "STARTED":
        details = loads(row.details_json, {})
        return NewEvent("WaitSucceeded", ident, {"Duration": details.get("Duration")})
    if kind == RETRY and row.status == "PENDING":
        return NewEvent(STEP_READY, ident, {})
    if kind in (CALLBACK_TIMEOUT, CALLBACK_HEARTBEAT_TIMEOUT) and row.status == "STARTED":
        error = ({"ErrorType": "Callback.Timeout", "ErrorMessage": "Callback timed out"} if kind == CALLBACK_TIMEOUT
                 else {"ErrorType": "Callback.Heartbeat", "ErrorMessage": "Callback timed out on heartbeat"})
        return NewEvent("CallbackTimedOut", ident, {"Error": error_envelope(error)})
    return None


def invocation_completed(request_id: str, start_ms: int, end_ms: int, outcome: InvocationOutcome) -> NewEvent:
    details: dict[str, Any] = {"StartTimestamp": start_ms, "EndTimestamp": end_ms, "RequestId": request_id}
    if outcome.status in ("ERROR",):
        details["Error"] = error_envelope(outcome.error)
    return NewEvent("InvocationCompleted", None, details)


def paused_event(ws: Workset, execution: ExecRow) -> NewEvent:
    op = ws.op(execution.execution_id, execution.execution_id)
    details = (loads(op.details_json, {}) if op else {}).get("Pause", {})
    return NewEvent("ExecutionPaused", exec_ident(execution), details)
