"""STEP: attempts, retries after a delay (the ``retry`` timer), READY again when it is due."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.engine.operations.base import OperationSpec, PlanContext, identity, update_error
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.vocabulary import EventType, OperationStatus, OperationType, TimerKind
from recorder.store.workset import OpRow
from recorder.wire import Update


def plan(
    ctx: PlanContext, u: Update, ident: OpIdentity, status: str | None, attempt: int
) -> tuple[str, list[NewEvent]]:
    a = u.action
    if a == "START":
        if status not in (None, OperationStatus.READY):
            raise ctx.refuse(f"cannot START a step in status {status}")
        return OperationStatus.STARTED, [NewEvent(EventType.STEP_STARTED, ident, {})]
    if a == "CANCEL":
        raise ctx.refuse("steps cannot be cancelled")
    if status not in (None, OperationStatus.STARTED, OperationStatus.READY):
        raise ctx.refuse(f"cannot {a} a step in status {status}")
    if a == "RETRY":
        if u.next_attempt_delay is None:
            raise ctx.refuse("RETRY needs StepOptions.NextAttemptDelaySeconds")
        if u.error is not None and u.payload is not None:
            raise ctx.refuse("RETRY takes Error or Payload, not both")
        retry = {"CurrentAttempt": attempt + 1, "NextAttemptDelaySeconds": u.next_attempt_delay}
        if u.error is not None:
            return OperationStatus.PENDING, [
                NewEvent(
                    EventType.STEP_FAILED, ident, {"Error": error_envelope(update_error(u)), "RetryDetails": retry}
                )
            ]
        return OperationStatus.PENDING, [
            NewEvent(EventType.STEP_SUCCEEDED, ident, {"Result": payload_envelope(u.payload), "RetryDetails": retry})
        ]
    if a == "SUCCEED":
        if u.error is not None:
            raise ctx.refuse("SUCCEED takes no Error")
        return OperationStatus.SUCCEEDED, [
            NewEvent(
                EventType.STEP_SUCCEEDED,
                ident,
                {"Result": payload_envelope(u.payload), "RetryDetails": {"CurrentAttempt": attempt + 1}},
            )
        ]
    if u.payload is not None:
        raise ctx.refuse("FAIL takes no Payload")
    return OperationStatus.FAILED, [
        NewEvent(
            EventType.STEP_FAILED,
            ident,
            {"Error": error_envelope(update_error(u)), "RetryDetails": {"CurrentAttempt": attempt + 1}},
        )
    ]


def timer_event(kind: str, row: OpRow) -> NewEvent | None:
    if kind == TimerKind.RETRY and row.status == OperationStatus.PENDING:
        return NewEvent(EventType.STEP_READY, identity(row), {})
    return None


def render(row: OpRow, out: dict[str, Any], details: dict[str, Any], error: Any, ts: Callable[[int], Any]) -> None:
    sd: dict[str, Any] = {"Attempt": row.attempt}
    if row.next_attempt_ms is not None and row.status == OperationStatus.PENDING:
        sd["NextAttemptTimestamp"] = ts(row.next_attempt_ms)
    if row.result is not None:
        sd["Result"] = row.result
    if error is not None:
        sd["Error"] = error
    out["StepDetails"] = sd


STEP = OperationSpec(
    type=OperationType.STEP,
    plan=plan,
    render=render,
    timer_event=timer_event,
    attempt_actions=frozenset({"SUCCEED", "FAIL", "RETRY"}),
    start_and_finish_in_one_checkpoint=True,
)
