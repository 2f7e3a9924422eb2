"""WAIT: a timer the backend completes (the ``wait`` timer), or the handler cancels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.engine.boundary import loads
from recorder.engine.operations.base import OperationSpec, PlanContext, identity, update_error
from recorder.store.events import NewEvent, OpIdentity, error_envelope
from recorder.store.vocabulary import EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import OpRow
from recorder.wire import Update


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    a = u.action
    if a == "START":
        if status is not None:
            raise ctx.refuse("the wait already exists")
        if u.wait_seconds is None:
            raise ctx.refuse("WAIT START needs WaitOptions.WaitSeconds")
        return OperationStatus.STARTED, [
            NewEvent(
                EventType.WAIT_STARTED,
                ident,
                {"Duration": u.wait_seconds, "ScheduledEndTimestamp": ctx.now + u.wait_seconds * 1000},
            )
        ]
    if a == "CANCEL":
        if status != OperationStatus.STARTED:
            raise ctx.refuse(f"cannot CANCEL a wait in status {status or 'absent'}")
        details = {"Error": error_envelope(update_error(u))} if u.error is not None else {}
        return OperationStatus.CANCELLED, [NewEvent(EventType.WAIT_CANCELLED, ident, details)]
    raise ctx.refuse(f"waits take START or CANCEL, not {a}")


def timer_event(kind: str, row: OpRow) -> NewEvent | None:
    if kind == TimerKind.WAIT and row.status == OperationStatus.STARTED:
        details = loads(row.details_json, {})
        return NewEvent(EventType.WAIT_SUCCEEDED, identity(row), {"Duration": details.get("Duration")})
    return None


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    if "ScheduledEndTimestamp" in details:
        out["WaitDetails"] = {"ScheduledEndTimestamp": ts(int(details["ScheduledEndTimestamp"]))}


WAIT = OperationSpec(type=OperationType.WAIT, plan=plan, render=render, timer_event=timer_event)
