"""CALLBACK: an id handed out, completed from outside, or timed out (two timers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.engine import tokens
from recorder.engine.operations.base import OperationSpec, PlanContext, identity, outcome_details
from recorder.store.events import NewEvent, OpIdentity, error_envelope
from recorder.store.vocabulary import EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import OpRow
from recorder.wire import Update

_TIMEOUT_ERRORS: dict[str, dict[str, str]] = {
    TimerKind.CALLBACK_TIMEOUT: {"ErrorType": "Callback.Timeout", "ErrorMessage": "Callback timed out"},
    TimerKind.CALLBACK_HEARTBEAT_TIMEOUT: {
        "ErrorType": "Callback.Heartbeat",
        "ErrorMessage": "Callback timed out on heartbeat",
    },
}


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    if u.action != "START":
        raise ctx.refuse(f"callbacks take only START, not {u.action}")
    if status is not None:
        raise ctx.refuse("the callback already exists")
    details: dict[str, Any] = {"CallbackId": tokens.new_callback_id(ctx.execution.execution_id, u.id)}
    if u.callback_timeout:
        details["Timeout"] = u.callback_timeout
    if u.callback_heartbeat:
        details["HeartbeatTimeout"] = u.callback_heartbeat
    return OperationStatus.STARTED, [NewEvent(EventType.CALLBACK_STARTED, ident, details)]


def timer_event(kind: str, row: OpRow) -> NewEvent | None:
    error = _TIMEOUT_ERRORS.get(kind)
    if error is not None and row.status == OperationStatus.STARTED:
        return NewEvent(EventType.CALLBACK_TIMED_OUT, identity(row), {"Error": error_envelope(error)})
    return None


def outcome(op: OpRow, details: dict[str, Any]) -> NewEvent:
    """The event a result sent from outside (``details`` of SendDurableExecutionCallback*) appends."""
    if details["Success"]:
        return NewEvent(EventType.CALLBACK_SUCCEEDED, identity(op), {"Result": details["Result"]})
    return NewEvent(EventType.CALLBACK_FAILED, identity(op), {"Error": details["Error"]})


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    out["CallbackDetails"] = outcome_details({"CallbackId": details.get("CallbackId")}, row, error)


CALLBACK = OperationSpec(type=OperationType.CALLBACK, plan=plan, render=render, timer_event=timer_event)
