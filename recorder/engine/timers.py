"""Timers: firing what is due, and settling what came due while an invocation ran."""

from __future__ import annotations

import json

from recorder.arns import ExecutionArn
from recorder.engine.boundary import loads, now_ms
from recorder.engine.operations import callback, chained_invoke, timer_event
from recorder.engine.operations.execution import exec_ident
from recorder.engine.transaction import Core, Tx, transaction
from recorder.store.events import NewEvent, error_envelope
from recorder.store.log import purge_execution
from recorder.store.sql import Raw
from recorder.store.vocabulary import (
    OPEN_EXECUTION,
    CallbackStatus,
    EventType,
    OperationStatus,
    OperationType,
    TimerKind,
)
from recorder.store.workset import ExecRow, StateRow

# Timers that fire while an invocation runs (the others wait for it to end: ``settle``).
_UNHELD = f"('{TimerKind.EXECUTION_TIMEOUT}', '{TimerKind.PURGE}')"
# Op timers settled after an invocation, as an SQL list.
_OP_TIMERS = (
    "('"
    + "', '".join((TimerKind.WAIT, TimerKind.RETRY, TimerKind.CALLBACK_TIMEOUT, TimerKind.CALLBACK_HEARTBEAT_TIMEOUT))
    + "')"
)


def due_timers(core: Core, now: int | None = None, limit: int = 500) -> list[tuple[str, str, str]]:
    """Timers the engine should fire now. Op timers of an execution whose invocation
    is running wait for it to end (``settle``); its timeout and purge do not."""
    now = now if now is not None else now_ms()
    with core.db.read() as s:
        rows = Raw(s.connection()).all(
            "SELECT t.execution_id, t.kind, t.op_id FROM timers t "
            "LEFT JOIN engine_state s ON s.execution_id = t.execution_id "
            f"WHERE t.due_ms <= :now AND (s.request_id IS NULL OR t.kind IN {_UNHELD}) "
            "ORDER BY t.due_ms LIMIT :lim",
            {"now": now, "lim": limit},
        )
    return [(r[0], r[1], r[2]) for r in rows]


def next_timer_due(core: Core) -> int | None:
    with core.db.read() as s:
        row = Raw(s.connection()).one(
            "SELECT MIN(t.due_ms) FROM timers t LEFT JOIN engine_state s ON s.execution_id = t.execution_id "
            f"WHERE s.request_id IS NULL OR t.kind IN {_UNHELD}"
        )
        return row[0] if row else None


def fire_timer(core: Core, execution_id: str, kind: str, op_id: str) -> None:
    with transaction(core) as tx:
        now = now_ms()
        raw = tx.ws.raw
        # Claim the timer: on PostgreSQL an engine that sees it locked leaves it to
        # the engine holding it (exactly one fires it).
        row = raw.one(
            "SELECT due_ms FROM timers WHERE execution_id = :eid AND kind = :kind AND op_id = :op"
            + (" FOR UPDATE SKIP LOCKED" if raw.postgres else ""),
            {"eid": execution_id, "kind": kind, "op": op_id},
        )
        if row is None or row[0] > now:
            return
        if kind == TimerKind.PURGE:
            purge_execution(tx.conn, execution_id)
            return
        ws = tx.ws
        execution, state, _ = tx.lock(execution_id)
        if execution.status not in OPEN_EXECUTION:
            ws.clear_timer(execution_id, kind, op_id)
        elif kind == TimerKind.EXECUTION_TIMEOUT:
            tx.close(
                execution,
                state,
                NewEvent(
                    EventType.EXECUTION_TIMED_OUT,
                    exec_ident(execution),
                    {
                        "Error": error_envelope(
                            {"ErrorMessage": f"Execution timed out after {execution.execution_timeout} seconds."}
                        )
                    },
                ),
                now,
            )
        elif state.request_id is not None:
            return  # an invocation is running: settle records it when it ends
        else:
            op = ws.op(execution_id, op_id)
            ev = timer_event(kind, op) if op is not None else None
            if ev is None:
                ws.clear_timer(execution_id, kind, op_id)
            else:
                tx.append(execution_id, [ev], now)
                tx.mark_changed(state, [op_id], now)


def settle(tx: Tx, execution: ExecRow, state: StateRow, now: int) -> None:
    """After an invocation ends: what came due while it ran, in order.

    While an invocation is in flight the backend does not complete its op timers
    or chained invokes on its own: the SDK only observes such completions when it
    polls (an empty refresh checkpoint, which does complete due timers), and
    otherwise suspends on them. Recording them after the InvocationCompleted keeps
    the history in the order the conformance requirements give, whatever the
    timing of the invocation's tail.
    """
    ws = tx.ws
    eid = execution.execution_id
    events: list[NewEvent] = []
    # One round trip for the three kinds of owed completion.
    owed = ws.raw.all(
        f"SELECT 1, kind, op_id, due_ms FROM timers WHERE execution_id = :eid AND kind IN {_OP_TIMERS} "
        "AND due_ms <= :now "
        "UNION ALL SELECT 2, 'callback', op_id, 0 FROM callbacks WHERE execution_id = :eid "
        f"AND status = '{CallbackStatus.RECEIVED}' "
        "UNION ALL SELECT 3, 'chained', op_id, 0 FROM operations WHERE execution_id = :eid "
        f"AND type = '{OperationType.CHAINED_INVOKE}' AND status = '{OperationStatus.STARTED}' ORDER BY 1, 4",
        {"eid": eid, "now": now},
    )
    for source, kind, op_id, _ in owed:
        op = ws.op(eid, op_id)
        if op is None or any(e.op_id == op_id for e in events):
            continue
        ev: NewEvent | None = None
        if source == 1:
            ev = timer_event(kind, op)
        elif source == 2 and op.status == OperationStatus.STARTED:
            received = ws.raw.one(
                "SELECT body FROM events WHERE execution_id = :eid AND op_id = :op AND event_type = "
                f"'{EventType.CALLBACK_RECEIVED}' ORDER BY position DESC LIMIT 1",
                {"eid": eid, "op": op_id},
            )
            ev = callback.outcome(op, json.loads(received[0])) if received else None
        elif source == 3:
            child_arn = loads(op.details_json, {}).get("DurableExecutionArn")
            child = ws.execution(ExecutionArn.parse(child_arn).execution_id) if child_arn else None
            ev = chained_invoke.outcome(op, child) if child is not None and child.status not in OPEN_EXECUTION else None
        if ev is not None:
            events.append(ev)
    if events:
        tx.append(eid, events, now)
        tx.mark_changed(state, [e.op_id for e in events if e.op_id], now)
