"""CHAINED_INVOKE: a child execution started by the checkpoint, completed when it closes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from recorder.arns import ExecutionArn
from recorder.engine.boundary import loads, normalize_input
from recorder.engine.operations.base import OperationSpec, PlanContext, identity, outcome_details
from recorder.errors import InvalidParameterValueException, ResourceNotFoundException
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.vocabulary import EventType, ExecutionStatus, OperationStatus, OperationType
from recorder.store.workset import ExecRow, OpRow
from recorder.wire import MAX_PAYLOAD, Update

if TYPE_CHECKING:
    from recorder.engine.transaction import Core


def child_name(execution_id: str, op_id: str) -> str:
    # Deterministic, so a replayed START can never start a second child.
    return "chained-" + hashlib.sha256(f"{execution_id}/{op_id}".encode()).hexdigest()[:40]


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    if u.action != "START":
        raise ctx.refuse(f"chained invokes take only START, not {u.action}")
    if status is not None:
        raise ctx.refuse("the chained invoke already exists")
    if not u.has_invoke_options or not u.invoke_function:
        raise ctx.refuse("CHAINED_INVOKE START needs ChainedInvokeOptions.FunctionName")
    if u.payload is not None and len(u.payload.encode("utf-8")) > MAX_PAYLOAD:
        raise ctx.refuse("the chained invoke payload is larger than 1 MiB")
    details: dict[str, Any] = {"FunctionName": u.invoke_function}
    if u.invoke_tenant:
        details["TenantId"] = u.invoke_tenant
    target = _resolve_target(ctx.core, u.invoke_function)
    if target is None:
        error = {"ErrorType": "ResourceNotFoundException", "ErrorMessage": f"Function not found: {u.invoke_function}"}
        return OperationStatus.FAILED, [
            NewEvent(EventType.CHAINED_INVOKE_STARTED, ident, details),
            NewEvent(EventType.CHAINED_INVOKE_FAILED, ident, {"Error": error_envelope(error)}),
        ]
    settings = ctx.core.settings
    execution_id = ctx.execution.execution_id
    child_id = str(uuid.uuid4())
    child_arn = ExecutionArn(
        settings.region, settings.account_id, target, "$LATEST", child_name(execution_id, u.id), child_id
    )
    details["Input"] = payload_envelope(u.payload)
    details["ExecutedVersion"] = "$LATEST"
    details["DurableExecutionArn"] = str(child_arn)
    ctx.children.append((u.id, target, normalize_input(u.payload), child_id))
    return OperationStatus.STARTED, [NewEvent(EventType.CHAINED_INVOKE_STARTED, ident, details)]


def _resolve_target(core: Core, text: str) -> str | None:
    try:
        return core.functions.served(text).name
    except (ResourceNotFoundException, InvalidParameterValueException):
        return None


def outcome(op: OpRow, child: ExecRow) -> NewEvent:
    """The event a closed child execution appends to its parent's op."""
    ident = identity(op)
    error = loads(child.error_json, None)
    if child.status == ExecutionStatus.SUCCEEDED:
        return NewEvent(EventType.CHAINED_INVOKE_SUCCEEDED, ident, {"Result": payload_envelope(child.result)})
    if child.status == ExecutionStatus.FAILED:
        return NewEvent(EventType.CHAINED_INVOKE_FAILED, ident, {"Error": error_envelope(error)})
    if child.status == ExecutionStatus.TIMED_OUT:
        return NewEvent(
            EventType.CHAINED_INVOKE_TIMED_OUT,
            ident,
            {
                "Error": error_envelope(
                    error or {"ErrorType": "ChainedInvoke.Timeout", "ErrorMessage": "Chained execution timed out"}
                )
            },
        )
    return NewEvent(EventType.CHAINED_INVOKE_STOPPED, ident, {"Error": error_envelope(error)})


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    out["ChainedInvokeDetails"] = outcome_details({}, row, error)


CHAINED_INVOKE = OperationSpec(type=OperationType.CHAINED_INVOKE, plan=plan, render=render)
