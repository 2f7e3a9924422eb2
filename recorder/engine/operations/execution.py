"""EXECUTION: the execution's own op, closed by an EXECUTION update (SUCCEED or FAIL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.engine.boundary import loads
from recorder.engine.operations.base import OperationSpec, PlanContext, update_error
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.vocabulary import EventType, OperationStatus, OperationType
from recorder.store.workset import ExecRow, OpRow, Workset
from recorder.wire import Update


def exec_ident(execution: ExecRow) -> OpIdentity:
    """Execution events carry the EXECUTION op Id and the execution name as ``Name``."""
    return OpIdentity(execution.execution_id, OperationType.EXECUTION, name=execution.name)


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    """The closing event of an EXECUTION update (``ident`` is ignored: it is the execution's)."""
    ident = exec_ident(ctx.execution)
    if u.action == "SUCCEED":
        if u.error is not None:
            raise ctx.refuse("SUCCEED takes no Error")
        return OperationStatus.SUCCEEDED, [
            NewEvent(EventType.EXECUTION_SUCCEEDED, ident, {"Result": payload_envelope(u.payload)})
        ]
    if u.action == "FAIL":
        if u.payload is not None:
            raise ctx.refuse("FAIL takes no Payload")
        return OperationStatus.FAILED, [
            NewEvent(EventType.EXECUTION_FAILED, ident, {"Error": error_envelope(update_error(u))})
        ]
    raise ctx.refuse("EXECUTION takes only SUCCEED or FAIL")


def paused_event(ws: Workset, execution: ExecRow) -> NewEvent:
    """ExecutionPaused with the pause request the EXECUTION op holds."""
    op = ws.op(execution.execution_id, execution.execution_id)
    details = (loads(op.details_json, {}) if op else {}).get("Pause", {})
    return NewEvent(EventType.EXECUTION_PAUSED, exec_ident(execution), details)


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    inp = details.get("InputPayload")
    out["ExecutionDetails"] = {"InputPayload": inp} if inp is not None else {}


EXECUTION = OperationSpec(type=OperationType.EXECUTION, plan=plan, render=render)
