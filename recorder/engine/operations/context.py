"""CONTEXT: child contexts (and parallel/map branches) that group other operations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.engine.operations.base import OperationSpec, PlanContext, outcome_details, update_error
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.vocabulary import EventType, OperationStatus, OperationType
from recorder.store.workset import OpRow
from recorder.wire import Update


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    a = u.action
    if a == "START":
        if status is not None:
            raise ctx.refuse("the context already exists")
        return OperationStatus.STARTED, [NewEvent(EventType.CONTEXT_STARTED, ident, {})]
    if a not in ("SUCCEED", "FAIL"):
        raise ctx.refuse(f"contexts take START, SUCCEED or FAIL, not {a}")
    if status not in (None, OperationStatus.STARTED):
        raise ctx.refuse(f"cannot {a} a context in status {status}")
    if a == "SUCCEED":
        if u.error is not None:
            raise ctx.refuse("SUCCEED takes no Error")
        extra = {"ReplayChildren": True} if u.replay_children else None
        return OperationStatus.SUCCEEDED, [
            NewEvent(EventType.CONTEXT_SUCCEEDED, ident, {"Result": payload_envelope(u.payload)}, extra)
        ]
    if u.payload is not None:
        raise ctx.refuse("FAIL takes no Payload")
    return OperationStatus.FAILED, [
        NewEvent(EventType.CONTEXT_FAILED, ident, {"Error": error_envelope(update_error(u))})
    ]


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    cd = outcome_details({}, row, error)
    if row.replay_children:
        cd["ReplayChildren"] = True
    if cd:
        out["ContextDetails"] = cd


CONTEXT = OperationSpec(type=OperationType.CONTEXT, plan=plan, render=render, start_and_finish_in_one_checkpoint=True)
