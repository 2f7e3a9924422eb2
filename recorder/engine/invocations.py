"""Invocations: claiming an owed one under a lease, renewing the lease, recording its end.

An execution owes an invocation while ``engine_state.invoke_wanted`` is set and
``next_invoke_ms`` has come; a claim takes it by setting ``request_id`` and a lease
(``lease_owner``, ``lease_expires_ms``). An invocation whose lease expires is recorded as
lost (a failed invocation), and ``max_invocation_attempts`` failures in a row that made
no progress (completed no operation) fail the execution. A failure the engine reports
as its own (the invocation overlapped a database outage) is recorded but not counted.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from recorder.engine import tokens
from recorder.engine.boundary import FunctionSpec, InvocationInput, InvocationOutcome, OutcomeStatus, loads, now_ms
from recorder.engine.operations.execution import exec_ident, paused_event
from recorder.engine.state_pages import STATE_PAGE_BYTES, navigable_page
from recorder.engine.timers import settle
from recorder.engine.transaction import Core, Tx, transaction
from recorder.store.events import NewEvent, error_envelope, payload_envelope
from recorder.store.models import EngineState, Execution, table_of
from recorder.store.vocabulary import OPEN_EXECUTION, EventType, ExecutionStatus, OperationStatus, OperationType
from recorder.store.workset import ExecRow, StateRow, Workset

MAX_INVALID_PENDING = 3


def begin_invocation(core: Core, execution_id: str, owner: str) -> InvocationInput | None:
    """Claim an owed invocation; None when there is nothing to run (or another engine runs it)."""
    with transaction(core) as tx:
        ws = tx.ws
        got = ws.lock(execution_id, skip_locked=True)
        if got is None:
            return None  # being claimed or changed by another transaction right now
        execution, state, _ = got
        tx.lock_parent(execution)
        now = now_ms()
        if execution.status in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED) and state.request_id is None:
            return None  # no new invocations while paused; resume re-arms them
        if execution.status not in OPEN_EXECUTION:
            if state.invoke_wanted:
                state.invoke_wanted = False
                ws.touch_state(state)
            return None
        if state.request_id is not None:
            if (state.lease_expires_ms or 0) > now:
                return None  # an invocation (ours or another engine's) is alive
            _record_lost_invocation(tx, execution, state, now)
            ws.flush()
            if execution.status != ExecutionStatus.RUNNING:
                return None
        if not state.invoke_wanted or state.next_invoke_ms > now:
            return None
        spec = core.functions.get(execution.function_name, tx.conn)
        if spec is None:
            tx.close(
                execution,
                state,
                NewEvent(
                    EventType.EXECUTION_FAILED,
                    exec_ident(execution),
                    {
                        "Error": error_envelope(
                            {
                                "ErrorType": "ResourceNotFoundException",
                                "ErrorMessage": f"Function not found: {execution.function_name}",
                            }
                        )
                    },
                ),
                now,
            )
            return None
        return claim(tx, execution, state, spec, owner, now)


def claim(tx: Tx, execution: ExecRow, state: StateRow, spec: FunctionSpec, owner: str, now: int) -> InvocationInput:
    """Start an invocation of an execution that owes one, leased to ``owner``."""
    ws = tx.ws
    execution_id = execution.execution_id
    request_id = str(uuid.uuid4())
    state.invocation_seq += 1
    state.token_seq += 1
    token = tokens.new_token(execution_id, state.invocation_seq, state.token_seq)
    state.token = token
    state.request_id = request_id
    state.invocation_start_ms = now
    state.lease_owner = owner
    state.lease_expires_ms = tx.core.lease_end(now)
    state.invoke_wanted = False
    state.changed_while_running = False
    updated = loads(state.updated_ops_json, [])
    state.updated_ops_json = "[]"
    state.pending_ops_json = "[]"
    ws.touch_state(state)
    owed = tx.owed
    if execution_id in owed.invoke:
        # Wanted and claimed in this transaction: neither the wish nor its due time
        # (``Tx.want_invoke``) is news for any engine.
        owed.invoke.discard(execution_id)
        if state.next_invoke_ms in owed.timer_dues:
            owed.timer_dues.remove(state.next_invoke_ms)
    tx.append(
        execution_id,
        [
            NewEvent(
                EventType.INVOCATION_STARTED, None, {"RequestId": request_id, "StartTimestamp": now, "Engine": owner}
            )
        ],
        now,
    )
    ws.flush()
    ops, next_seq = navigable_page(ws.raw, execution_id, 0, 1000, STATE_PAGE_BYTES)
    return InvocationInput(
        execution_id=execution_id,
        arn=execution.arn,
        request_id=request_id,
        token=token,
        operations=ops,
        next_marker=tokens.state_marker(token, next_seq) if next_seq is not None else "",
        updated_operation_ids=updated,
        function=spec,
        start_ms=now,
    )


def invocation_completed(request_id: str, start_ms: int, end_ms: int, outcome: InvocationOutcome) -> NewEvent:
    details: dict[str, Any] = {"StartTimestamp": start_ms, "EndTimestamp": end_ms, "RequestId": request_id}
    if outcome.status == OutcomeStatus.ERROR:
        details["Error"] = error_envelope(outcome.error)
    return NewEvent(EventType.INVOCATION_COMPLETED, None, details)


def _record_lost_invocation(tx: Tx, execution: ExecRow, state: StateRow, now: int) -> None:
    """An invocation whose engine died (lease expired): record it as failed."""
    error = {
        "ErrorType": "Runtime.ExitError",
        "ErrorMessage": "The invocation was lost: its engine stopped before it returned",
    }
    _finish(
        tx,
        execution,
        state,
        state.request_id or "",
        state.invocation_start_ms or now,
        InvocationOutcome(OutcomeStatus.ERROR, error=error),
        now,
    )


def renew_lease(core: Core, execution_id: str, request_id: str, owner: str) -> bool:
    table = table_of(EngineState)
    with core.db.write() as conn:
        done = conn.execute(
            update(table)
            .where(table.c.execution_id == execution_id, table.c.request_id == request_id)
            .values(lease_owner=owner, lease_expires_ms=core.lease_end(now_ms()))
        )
        return bool(done.rowcount)


def end_invocation(core: Core, inv: InvocationInput, outcome: InvocationOutcome, engine_fault: bool = False) -> bool:
    """Record the invocation's end. True when the execution wants another invocation now
    (the caller may run it at once instead of waiting for the dispatcher). With
    ``engine_fault`` a failed invocation failed for the engine (its database was down),
    not for its handler: it counts toward no ``max_invocation_attempts``."""
    with transaction(core) as tx:
        execution, state, _ = tx.lock(inv.execution_id)
        now = now_ms()
        if state.request_id != inv.request_id:
            # Superseded (its lease expired and another invocation took over): the
            # invocation still happened, so it is still recorded.
            tx.append(inv.execution_id, [invocation_completed(inv.request_id, inv.start_ms, now, outcome)], now)
            return False
        _finish(tx, execution, state, inv.request_id, inv.start_ms, outcome, now, counted=not engine_fault)
        again = inv.execution_id in tx.owed.invoke and state.next_invoke_ms <= now
        if again:
            # The caller runs it at once: no engine needs telling.
            tx.owed.invoke.discard(inv.execution_id)
    return again


def _finish(
    tx: Tx,
    execution: ExecRow,
    state: StateRow,
    request_id: str,
    start_ms: int,
    outcome: InvocationOutcome,
    now: int,
    counted: bool = True,
) -> None:
    ws = tx.ws
    eid = execution.execution_id
    # Before this transaction's own changes: the query flushes them.
    progressed = outcome.status == "ERROR" and _made_progress(ws, eid)
    tx.append(eid, [invocation_completed(request_id, start_ms, now, outcome)], now)
    state.request_id = None
    state.lease_owner = None
    state.lease_expires_ms = None
    state.token = None
    changed = state.changed_while_running or bool(loads(state.pending_ops_json, []))
    state.changed_while_running = False
    ws.touch_state(state)
    if execution.status not in OPEN_EXECUTION:
        return  # closed by a checkpoint, a stop or a timeout: the output is ignored
    if outcome.status in (OutcomeStatus.PENDING, OutcomeStatus.ERROR):
        settle(tx, execution, state, now)
        changed = changed or state.invoke_wanted
    ident = exec_ident(execution)
    st = outcome.status
    if st == OutcomeStatus.SUCCEEDED and not outcome.has_error:
        state.consecutive_failures = 0
        tx.close(
            execution,
            state,
            NewEvent(EventType.EXECUTION_SUCCEEDED, ident, {"Result": payload_envelope(outcome.result)}),
            now,
        )
    elif st == OutcomeStatus.FAILED and not outcome.has_result:
        state.consecutive_failures = 0
        tx.close(
            execution, state, NewEvent(EventType.EXECUTION_FAILED, ident, {"Error": error_envelope(outcome.error)}), now
        )
    elif st in (OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED, OutcomeStatus.INVALID):
        both = "Error" if st == OutcomeStatus.SUCCEEDED else "Result"
        error = (
            outcome.error
            if st == OutcomeStatus.INVALID
            else {
                "ErrorType": "InvalidParameterValueException",
                "ErrorMessage": f"Invalid handler output: {st} with {both}",
            }
        )
        tx.close(execution, state, NewEvent(EventType.EXECUTION_FAILED, ident, {"Error": error_envelope(error)}), now)
    elif st in (OutcomeStatus.PENDING, OutcomeStatus.ERROR) and execution.status == ExecutionStatus.PAUSING:
        # The pause waited for this invocation; it takes effect now. Resume
        # invokes again (the pause may have cut the invocation short).
        state.consecutive_failures = 0
        state.invoke_wanted = True
        tx.append(eid, [paused_event(ws, execution)], now)
    elif st == OutcomeStatus.PENDING:
        state.consecutive_failures = 0
        if changed:
            state.invalid_pending = 0
            tx.want_invoke(state, now)
        elif _has_backend_wait(ws, eid):
            state.invalid_pending = 0
        else:
            state.invalid_pending += 1
            if state.invalid_pending > MAX_INVALID_PENDING:
                tx.close(
                    execution,
                    state,
                    NewEvent(
                        EventType.EXECUTION_FAILED,
                        ident,
                        {
                            "Error": error_envelope(
                                {
                                    "ErrorType": "InvalidParameterValueException",
                                    "ErrorMessage": (
                                        "The handler returned PENDING but nothing is waiting on the backend"
                                    ),
                                }
                            )
                        },
                    ),
                    now,
                )
            else:
                tx.want_invoke(state, now)
    else:  # ERROR: the invocation itself failed; Lambda retries it
        if progressed:
            state.consecutive_failures = 0
        elif counted:
            state.consecutive_failures += 1
        if state.consecutive_failures >= tx.core.settings.max_invocation_attempts:
            tx.close(
                execution,
                state,
                NewEvent(EventType.EXECUTION_FAILED, ident, {"Error": error_envelope(outcome.error)}),
                now,
            )
        else:
            delay = int(tx.core.settings.invocation_retry_seconds * 1000 * max(1, state.consecutive_failures))
            tx.want_invoke(state, now + delay)


def _made_progress(ws: Workset, execution_id: str) -> bool:
    """Whether the latest invocation completed an operation (a step, a wait, a child
    context...): a crash after that is no crash loop, whatever it is."""
    ws.flush()
    row = ws.raw.one(
        "SELECT 1 FROM events WHERE execution_id = :eid AND position > ("
        "SELECT max(position) FROM events WHERE execution_id = :eid AND event_type = :started) "
        "AND (event_type LIKE :succeeded OR event_type LIKE :failed) "
        "AND event_type NOT LIKE :execution AND event_type NOT LIKE :invocation LIMIT 1",
        {
            "eid": execution_id,
            "started": EventType.INVOCATION_STARTED.value,
            "succeeded": "%Succeeded",
            "failed": "%Failed",
            "execution": "Execution%",
            "invocation": "Invocation%",
        },
    )
    return row is not None


def _has_backend_wait(ws: Workset, execution_id: str) -> bool:
    ws.flush()
    row = ws.raw.one(
        "SELECT op_id FROM operations WHERE execution_id = :eid AND ("
        f"(type = '{OperationType.STEP}' AND status IN ('{OperationStatus.PENDING}', '{OperationStatus.READY}')) OR "
        f"(type IN ('{OperationType.WAIT}', '{OperationType.CALLBACK}', '{OperationType.CHAINED_INVOKE}') "
        f"AND status = '{OperationStatus.STARTED}')) LIMIT 1",
        {"eid": execution_id},
    )
    return row is not None


def owed_invocations(core: Core, limit: int = 10_000) -> list[tuple[str, int]]:
    """Executions that want an invocation or whose in-flight invocation may be lost."""
    with core.db.read() as s:
        rows = s.execute(
            select(EngineState.execution_id, EngineState.next_invoke_ms, EngineState.lease_expires_ms)
            .join(Execution, Execution.execution_id == EngineState.execution_id)
            .where(
                Execution.status.in_(OPEN_EXECUTION),
                (EngineState.invoke_wanted.is_(True)) | (EngineState.request_id.is_not(None)),
            )
            .limit(limit)
        ).all()
    return [(r[0], max(r[1] or 0, r[2] or 0) if r[2] else (r[1] or 0)) for r in rows]
