"""An execution's life from outside: start, stop, pause, resume, delete."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from recorder.arns import NAME_RE, ExecutionArn, parse_function_name
from recorder.engine.boundary import InvocationInput, StartResult, loads, normalize_input, now_ms
from recorder.engine.invocations import claim
from recorder.engine.operations.execution import exec_ident
from recorder.engine.transaction import Core, Tx, transaction
from recorder.errors import (
    DurableExecutionAlreadyStartedException,
    InvalidParameterValueException,
    RequestTooLargeException,
    ResourceConflictException,
)
from recorder.store.events import NewEvent, OpIdentity, error_envelope, payload_envelope
from recorder.store.log import purge_execution
from recorder.store.models import Execution, table_of
from recorder.store.vocabulary import OPEN_EXECUTION, EventType, ExecutionStatus, OperationType
from recorder.store.workset import StateRow
from recorder.wire import ErrorObject


def start_execution(
    core: Core, function: str, payload: str | bytes | None = None, name: str | None = None, qualifier: str | None = None
) -> StartResult:
    ref = parse_function_name(function)
    if (qualifier or ref.qualifier) not in (None, "$LATEST"):
        core.functions.served(function, qualifier)  # raises: only $LATEST is served
    if name is not None and (not isinstance(name, str) or not NAME_RE.match(name)):
        raise InvalidParameterValueException("DurableExecutionName must match [a-zA-Z0-9-_]{1,64}")
    data = normalize_input(payload)
    if data is not None and len(data.encode("utf-8")) > 6 * 1024 * 1024:
        raise RequestTooLargeException("Payload is larger than 6 MB")
    claimer = core.start_claimer
    reserved: str | None = None
    claimed: InvocationInput | None = None

    def run_claimed() -> None:
        if claimed is not None and claimer is not None:
            claimer.run(claimed)  # committed: whatever else happens, it must run

    tx: Tx | None = None
    try:
        with transaction(core, then=run_claimed) as tx:
            now = now_ms()
            result = start_in(tx, ref.name, data, name, now)
            if result.created and claimer is not None:
                owner = claimer.reserve(result.execution_id, ref.name)
                if owner is not None:
                    reserved = result.execution_id
                    execution = tx.ws.execution(reserved)
                    spec = core.functions.get(ref.name, tx.conn)
                    assert execution is not None and spec is not None  # created just now
                    claimed = claim(tx, execution, tx.ws.state(reserved), spec, owner, now)
    except BaseException:
        if reserved is not None and claimer is not None and (tx is None or not tx.committed):
            claimer.release(reserved, ref.name)
        raise
    return result


def start_in(
    tx: Tx,
    function: str,
    data: str | None,
    name: str | None,
    now: int,
    parent: tuple[str, str] | None = None,
    execution_id: str | None = None,
) -> StartResult:
    core = tx.core
    spec = core.functions.served(function, conn=tx.conn)
    if name is not None:
        ex = table_of(Execution)
        existing = tx.conn.execute(
            select(ex.c.arn, ex.c.execution_id, ex.c.input_payload).where(
                ex.c.function_name == function, ex.c.name == name
            )
        ).first()
        if existing is not None:
            if existing.input_payload == data:
                return StartResult(arn=existing.arn, execution_id=existing.execution_id, created=False)
            raise DurableExecutionAlreadyStartedException(
                f"Durable execution {name} already exists for function {function} with a different input"
            )
    execution_id = execution_id or str(uuid.uuid4())
    name = name or execution_id
    arn = str(ExecutionArn(core.settings.region, core.settings.account_id, function, "$LATEST", name, execution_id))
    extra: dict[str, Any] = {
        "Arn": arn,
        "FunctionName": function,
        "FunctionVersion": "$LATEST",
        "ExecutionName": name,
        "RetentionDays": spec.retention_days,
    }
    if parent:
        extra["ParentArn"], extra["ParentOpId"] = parent
    started = NewEvent(
        EventType.EXECUTION_STARTED,
        OpIdentity(execution_id, OperationType.EXECUTION, name=name),
        {"Input": payload_envelope(data), "ExecutionTimeout": spec.execution_timeout},
        extra,
    )
    state = StateRow(
        execution_id=execution_id,
        token=None,
        token_seq=0,
        invocation_seq=0,
        request_id=None,
        invocation_start_ms=None,
        lease_owner=None,
        lease_expires_ms=None,
        invoke_wanted=False,
        next_invoke_ms=0,
        pending_ops_json="[]",
        updated_ops_json="[]",
        changed_while_running=False,
        consecutive_failures=0,
        invalid_pending=0,
        last_client_token=None,
        last_client_inbound=None,
        last_client_response=None,
        last_client_ms=None,
    )
    tx.append(execution_id, [started], now)
    tx.ws.add_state(state)
    tx.want_invoke(state, now)
    return StartResult(arn=arn, execution_id=execution_id, created=True)


def stop_execution(core: Core, arn: str, error: ErrorObject | None = None) -> int:
    with transaction(core) as tx:
        execution, state = tx.lock_by_arn(arn)
        if execution.status not in OPEN_EXECUTION:
            return execution.end_ms or execution.last_ts_ms
        now = now_ms()
        err = error.to_dict() if error else {"ErrorMessage": "Execution stopped by user request"}
        tx.close(
            execution,
            state,
            NewEvent(EventType.EXECUTION_STOPPED, exec_ident(execution), {"Error": error_envelope(err)}),
            now,
        )
        end = execution.end_ms or now
    return end


def _check_reason(reason: Any) -> None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1024):
        raise InvalidParameterValueException("Reason must be a string of at most 1024 characters")


def pause_execution(core: Core, arn: str, reason: str | None = None, timeout_paused: bool | None = None) -> None:
    """PauseDurableExecution. Choices (docs/protocol.md#choices): pausing a paused or
    pausing execution changes nothing; pausing a closed one is a ResourceConflictException."""
    _check_reason(reason)
    with transaction(core) as tx:
        execution, state = tx.lock_by_arn(arn)
        if execution.status in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED):
            return
        if execution.status != ExecutionStatus.RUNNING:
            raise ResourceConflictException(f"Durable execution is {execution.status}; only running executions pause")
        now = now_ms()
        details: dict[str, Any] = {
            "PauseRequestTimestamp": now,
            "Reason": payload_envelope(reason),
            "ExecutionTimeoutPaused": True if timeout_paused is None else bool(timeout_paused),
        }
        if state.request_id is not None:
            tx.append(execution.execution_id, [NewEvent(EventType.PAUSE_REQUESTED, None, details)], now)
        else:
            tx.append(
                execution.execution_id, [NewEvent(EventType.EXECUTION_PAUSED, exec_ident(execution), details)], now
            )


def resume_execution(core: Core, arn: str, reason: str | None = None) -> None:
    """ResumeDurableExecution. Resuming a PAUSING execution cancels the pause (an
    engine record, since no ExecutionPaused was written); resuming a running one is a
    ResourceConflictException (unconfirmed)."""
    _check_reason(reason)
    with transaction(core) as tx:
        execution, state = tx.lock_by_arn(arn)
        now = now_ms()
        if execution.status == ExecutionStatus.PAUSING:
            tx.append(execution.execution_id, [NewEvent(EventType.PAUSE_CANCELLED, None, {})], now)
        elif execution.status == ExecutionStatus.PAUSED:
            tx.append(
                execution.execution_id,
                [
                    NewEvent(
                        EventType.EXECUTION_RESUMED,
                        exec_ident(execution),
                        {"ResumeRequestTimestamp": now, "Reason": payload_envelope(reason)},
                    )
                ],
                now,
            )
            _rearm(tx, state, now)
        else:
            raise ResourceConflictException(f"Durable execution is {execution.status}, not paused")


def _rearm(tx: Tx, state: StateRow, now: int) -> None:
    if state.invoke_wanted or loads(state.updated_ops_json, []):
        tx.want_invoke(state, now)
        tx.ws.touch_state(state)


def delete_execution(core: Core, arn: str) -> int:
    """DeleteDurableExecution: a closed execution leaves the store through the purge path."""
    with transaction(core) as tx:
        execution, _ = tx.lock_by_arn(arn)
        if execution.status in OPEN_EXECUTION:
            raise ResourceConflictException(f"Durable execution is {execution.status}; stop it before deleting it")
        purge_execution(tx.conn, execution.execution_id)
    return now_ms()
