"""Checkpoints: validate a whole batch of updates, then decide and apply its events.

Nothing is applied before every update of a checkpoint has been validated (``_plan``
works on ``_Sim`` copies of the operations), so a rejected request changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recorder.arns import ExecutionArn
from recorder.engine import tokens
from recorder.engine.boundary import loads, now_ms
from recorder.engine.lifecycle import start_in
from recorder.engine.operations import OPERATIONS, operation_to_wire, timer_event
from recorder.engine.operations.base import PlanContext
from recorder.engine.operations.chained_invoke import child_name
from recorder.engine.operations.execution import exec_ident
from recorder.engine.state_pages import render_ops
from recorder.engine.transaction import Core, Tx, transaction
from recorder.errors import InvalidParameterValueException, invalid_token
from recorder.store.events import NewEvent, OpIdentity
from recorder.store.vocabulary import OPEN_EXECUTION, ExecutionStatus, OperationStatus, OperationType, TimerKind
from recorder.store.workset import ExecRow, StateRow, Workset
from recorder.wire import Update, parse_updates, ts_ms

CLIENT_TOKEN_WINDOW_MS = 15 * 60 * 1000


@dataclass
class _Sim:
    """The part of an operation that checkpoint validation reads."""

    type: str
    status: str
    sub_type: str | None
    name: str | None
    parent_id: str | None
    attempt: int


def checkpoint(
    core: Core, arn: str, token: Any, raw_updates: Any, client_token: Any = None, ts: Callable[[int], Any] = ts_ms
) -> dict[str, Any]:
    execution_id = ExecutionArn.parse(arn).execution_id
    if not isinstance(token, str) or not token:
        raise invalid_token("CheckpointToken is required")
    if client_token is not None and (not isinstance(client_token, str) or not 1 <= len(client_token) <= 64):
        raise InvalidParameterValueException("ClientToken must be a string of 1 to 64 characters")
    updates = parse_updates(raw_updates)
    with transaction(core) as tx:
        execution, state, next_op_timer = tx.lock(execution_id)
        now = now_ms()
        if (
            client_token is not None
            and state.last_client_token == client_token
            and state.last_client_inbound == token
            and state.last_client_ms is not None
            and now - state.last_client_ms < CLIENT_TOKEN_WINDOW_MS
            and state.last_client_response
        ):
            return render_ops(json.loads(state.last_client_response), ts)
        if state.token is None or token != state.token or execution.status not in OPEN_EXECUTION:
            raise invalid_token()
        response = _apply_checkpoint(tx, execution, state, updates, now, next_op_timer)
        if client_token is not None:
            state.last_client_token = client_token
            state.last_client_inbound = token
            state.last_client_ms = now
            state.last_client_response = json.dumps(response)
        tx.ws.touch_state(state)
    return render_ops(response, ts)


def _apply_checkpoint(
    tx: Tx, execution: ExecRow, state: StateRow, updates: list[Update], now: int, next_op_timer: int | None
) -> dict[str, Any]:
    ws = tx.ws
    eid = execution.execution_id
    wanted = {u.id for u in updates if u.type != OperationType.EXECUTION} | {
        u.parent_id for u in updates if u.parent_id
    }
    rows = ws.preload_ops(eid, wanted) if wanted else {}
    sim = {op_id: _Sim(r.type, r.status, r.sub_type, r.name, r.parent_id, r.attempt) for op_id, r in rows.items()}

    # An empty checkpoint is the SDK polling for branches suspended until a time
    # (docs/protocol.md#checkpoints): it completes the waits and retries due by now. Other checkpoints
    # leave timers to the end of the invocation (see timers.settle).
    timer_events: list[NewEvent] = []
    timer_ops: list[str] = []
    if not updates and next_op_timer is not None and next_op_timer <= now:
        timer_events, timer_ops = _due_op_timers(ws, eid, now, sim)
    events, children, closing = _plan(tx.core, execution, updates, sim, now)

    body = timer_events + [e for e in events if e is not closing]
    if body:
        tx.append(eid, body, now)
    for op_id, fn, data, child_id in children:
        start_in(tx, fn, data, child_name(eid, op_id), now, parent=(execution.arn, op_id), execution_id=child_id)
    if closing is not None:
        tx.close(execution, state, closing, now)

    touched = [u.id for u in updates if u.type != OperationType.EXECUTION]
    pending = loads(state.pending_ops_json, [])
    ops = [op for i in dict.fromkeys(touched + timer_ops + pending) if (op := ws.op(eid, i)) is not None]
    ops.sort(key=lambda o: o.seq)
    response: dict[str, Any] = {"NewExecutionState": {"Operations": [operation_to_wire(o) for o in ops]}}
    state.pending_ops_json = "[]"
    if closing is None and execution.status == ExecutionStatus.PAUSING:
        # Applied, but answered without a token: the SDK stops and returns PENDING.
        state.token = None
    elif closing is None:
        state.token_seq += 1
        state.token = tokens.new_token(eid, state.invocation_seq, state.token_seq)
        state.lease_expires_ms = tx.core.lease_end(now)
        response["CheckpointToken"] = state.token
    return response


def _due_op_timers(ws: Workset, execution_id: str, now: int, sim: dict[str, _Sim]) -> tuple[list[NewEvent], list[str]]:
    due = ws.raw.all(
        "SELECT kind, op_id FROM timers WHERE execution_id = :eid "
        f"AND kind IN ('{TimerKind.WAIT}', '{TimerKind.RETRY}') "
        "AND due_ms <= :now ORDER BY due_ms",
        {"eid": execution_id, "now": now},
    )
    events: list[NewEvent] = []
    ids: list[str] = []
    for kind, op_id in due:
        row = ws.op(execution_id, op_id)
        if row is None:
            continue
        ev = timer_event(kind, row)
        if ev is None:
            continue
        events.append(ev)
        ids.append(row.op_id)
        sim[row.op_id] = _Sim(
            row.type,
            OperationStatus.SUCCEEDED if kind == TimerKind.WAIT else OperationStatus.READY,
            row.sub_type,
            row.name,
            row.parent_id,
            row.attempt,
        )
    return events, ids


def _plan(
    core: Core, execution: ExecRow, updates: list[Update], sim: dict[str, _Sim], now: int
) -> tuple[list[NewEvent], list[tuple[str, str, str | None, str]], NewEvent | None]:
    """Validate the whole batch against ``sim`` and decide its events (nothing is written).
    Each update is planned by its operation type (``recorder.engine.operations``)."""
    events: list[NewEvent] = []
    children: list[tuple[str, str, str | None, str]] = []
    closing: NewEvent | None = None
    exec_idx = [i for i, u in enumerate(updates) if u.type == OperationType.EXECUTION]
    if len(exec_idx) > 1:
        raise InvalidParameterValueException("A checkpoint may carry at most one EXECUTION update")
    if exec_idx and exec_idx[0] != len(updates) - 1:
        raise InvalidParameterValueException("The EXECUTION update must be the last update of the checkpoint")
    seen: dict[str, list[str]] = {}
    for i, u in enumerate(updates):
        ctx = PlanContext(core, execution, now, f"Updates[{i}] ({u.type} {u.action} {u.id})", children)
        where = ctx.where
        op_type = OPERATIONS.get(u.type)
        if op_type is None:
            raise ctx.refuse(f"unknown operation type {u.type}")
        if u.type == OperationType.EXECUTION:
            _, closed = op_type.plan(ctx, u, exec_ident(execution), None, 0)
            closing = closed[0]
            events.append(closing)
            continue
        before = seen.get(u.id)
        if before is not None and not (
            op_type.start_and_finish_in_one_checkpoint and before == ["START"] and u.action != "START"
        ):
            raise InvalidParameterValueException(f"{where}: operation {u.id} appears twice in one checkpoint")
        seen.setdefault(u.id, []).append(u.action)
        cur = sim.get(u.id)
        if cur is not None:
            if cur.type != u.type:
                raise InvalidParameterValueException(f"{where}: operation is a {cur.type}, not a {u.type}")
            for label, given, stored in (
                ("SubType", u.sub_type, cur.sub_type),
                ("Name", u.name, cur.name),
                ("ParentId", u.parent_id, cur.parent_id),
            ):
                if given is not None and given != stored:
                    raise InvalidParameterValueException(
                        f"{where}: {label} {given!r} differs from the recorded {stored!r}"
                    )
        if u.parent_id is not None:
            parent = sim.get(u.parent_id)
            if parent is None or parent.type != OperationType.CONTEXT:
                raise InvalidParameterValueException(f"{where}: ParentId {u.parent_id} is not a CONTEXT operation")
        ident = OpIdentity(
            u.id,
            u.type,
            cur.sub_type if cur else u.sub_type,
            cur.name if cur else u.name,
            cur.parent_id if cur else u.parent_id,
        )
        status = cur.status if cur else None
        attempt = cur.attempt if cur else 0
        new_status, evs = op_type.plan(ctx, u, ident, status, attempt)
        events.extend(evs)
        if cur is None:
            sim[u.id] = _Sim(u.type, new_status, ident.sub_type, ident.name, ident.parent_id, 0)
        else:
            cur.status = new_status
        if u.action in op_type.attempt_actions:
            sim[u.id].attempt = attempt + 1
    return events, children, closing
