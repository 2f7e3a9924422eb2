"""Callbacks completed or kept alive from outside (SendDurableExecutionCallback*)."""

from __future__ import annotations

from typing import Any

from recorder.engine.boundary import now_ms
from recorder.engine.operations import callback
from recorder.engine.transaction import Core, transaction
from recorder.errors import (
    CallbackTimeoutException,
    InvalidParameterValueException,
    RequestTooLargeException,
    ResourceNotFoundException,
)
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.models import Callback
from recorder.store.vocabulary import OPEN_EXECUTION, CallbackStatus, EventType, OperationType
from recorder.wire import MAX_PAYLOAD, ErrorObject, refuse_nul


def _target(core: Core, callback_id: Any) -> tuple[str, str]:
    if not isinstance(callback_id, str) or not 1 <= len(callback_id) <= 1024:
        raise InvalidParameterValueException("CallbackId must be a string of 1 to 1024 characters")
    with core.db.read() as s:
        cb = s.get(Callback, callback_id)
        if cb is None:
            raise ResourceNotFoundException(f"Callback not found: {callback_id}")
        return cb.execution_id, cb.op_id


def callback_heartbeat(core: Core, callback_id: str) -> None:
    execution_id, op_id = _target(core, callback_id)
    with transaction(core) as tx:
        execution, _state, _ = tx.lock(execution_id)
        cb = tx.ws.callback(callback_id)
        if cb is None or cb.status != CallbackStatus.STARTED or execution.status not in OPEN_EXECUTION:
            raise CallbackTimeoutException(f"Callback {callback_id} is already closed")
        tx.append(
            execution_id,
            [
                NewEvent(
                    EventType.CALLBACK_HEARTBEAT, OpIdentity(op_id, OperationType.CALLBACK), {"CallbackId": callback_id}
                )
            ],
            now_ms(),
        )


def callback_complete(
    core: Core, callback_id: str, success: bool, result: bytes | None = None, error: ErrorObject | None = None
) -> None:
    execution_id, op_id = _target(core, callback_id)
    payload: str | None = None
    if success and result:
        if len(result) > MAX_PAYLOAD:
            raise RequestTooLargeException("Callback result is larger than 1 MiB")
        try:
            payload = result.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidParameterValueException("Callback result must be UTF-8 text") from exc
        refuse_nul(payload, "Result")
    with transaction(core) as tx:
        execution, state, _ = tx.lock(execution_id)
        cb = tx.ws.callback(callback_id)
        op = tx.ws.op(execution_id, op_id)
        if cb is None or op is None or cb.status != CallbackStatus.STARTED or execution.status not in OPEN_EXECUTION:
            raise CallbackTimeoutException(f"Callback {callback_id} is already closed")
        now = now_ms()
        details: dict[str, Any] = {"CallbackId": callback_id, "Success": success}
        if success:
            details["Result"] = payload_envelope(payload)
        else:
            details["Error"] = error_envelope(error.to_dict() if error else {})
        if state.request_id is not None:
            # The running invocation cannot observe it; timers.settle records it after it ends.
            tx.append(
                execution_id,
                [NewEvent(EventType.CALLBACK_RECEIVED, OpIdentity(op_id, OperationType.CALLBACK), details)],
                now,
            )
        else:
            tx.append(execution_id, [callback.outcome(op, details)], now)
            tx.mark_changed(state, [op_id], now)
