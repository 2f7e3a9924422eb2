"""The waiting board's data: every running execution that is suspended (no invocation
running), what it waits for, oldest first. Read from the projections and timers in a few
set-based queries, whatever the number of executions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

BOARD_LIMIT = 500


@dataclass(frozen=True)
class Waiting:
    kind: str  # wait, callback, retry, condition, chained-invoke
    name: str | None
    operation_id: str
    until_ms: int | None
    attempt: int = 0  # retry / condition: the attempts made so far
    callback_id: str | None = None
    heartbeat_due_ms: int | None = None
    chained_arn: str | None = None


@dataclass(frozen=True)
class Suspended:
    arn: str
    name: str
    function: str
    start_ms: int
    suspended_since_ms: int
    waiting_on: tuple[Waiting, ...]


def suspended_executions(conn: Connection | Session, function: str | None = None,
                         limit: int = BOARD_LIMIT) -> tuple[Suspended, ...]:
    params: dict[str, object] = {"limit": limit}
    where = "x.status = 'RUNNING' AND s.request_id IS NULL"
    if function:
        where += " AND x.function_name = :function"
        params["function"] = function
    # Suspended since its last invocation ended (or since it started, before any ended).
    rows = conn.execute(text(
        "SELECT x.execution_id, x.arn, x.name, x.function_name, x.start_ms, "
        "COALESCE((SELECT MAX(e.ts_ms) FROM events e WHERE e.execution_id = x.execution_id "
        "AND e.event_type = 'InvocationCompleted'), x.start_ms) AS since_ms "
        f"FROM executions x JOIN engine_state s ON s.execution_id = x.execution_id WHERE {where} "
        "ORDER BY since_ms, x.execution_id LIMIT :limit"), params).all()
    if not rows:
        return ()
    ids = {r.execution_id: i for i, r in enumerate(rows)}
    id_params = {f"e{i}": eid for eid, i in ids.items()}
    in_list = ", ".join(f":e{i}" for i in ids.values())
    timers = {(t.execution_id, t.kind, t.op_id): t.due_ms for t in conn.execute(text(
        f"SELECT execution_id, kind, op_id, due_ms FROM timers WHERE execution_id IN ({in_list})"), id_params)}
    callbacks = {(c.execution_id, c.op_id): c for c in conn.execute(text(
        "SELECT execution_id, op_id, callback_id FROM callbacks "
        f"WHERE status = 'STARTED' AND execution_id IN ({in_list})"), id_params)}
    items: dict[str, list[Waiting]] = {}
    for o in conn.execute(text(
            "SELECT execution_id, op_id, type, sub_type, name, status, attempt, next_attempt_ms, details_json "
            f"FROM operations WHERE execution_id IN ({in_list}) AND ("
            "(type IN ('WAIT', 'CALLBACK', 'CHAINED_INVOKE') AND status = 'STARTED') "
            "OR (type = 'STEP' AND status = 'PENDING')) ORDER BY execution_id, seq"), id_params):
        eid = o.execution_id
        if o.type == "WAIT":
            item = Waiting("wait", o.name, o.op_id, timers.get((eid, "wait", o.op_id)))
        elif o.type == "CALLBACK":
            cb = callbacks.get((eid, o.op_id))
            if cb is None:
                continue  # its result arrived: the execution is about to resume
            item = Waiting("callback", o.name, o.op_id, timers.get((eid, "callback-timeout", o.op_id)),
                           callback_id=cb.callback_id,
                           heartbeat_due_ms=timers.get((eid, "callback-heartbeat", o.op_id)))
        elif o.type == "STEP":
            kind = "condition" if o.sub_type == "WaitForCondition" else "retry"
            item = Waiting(kind, o.name, o.op_id, timers.get((eid, "retry", o.op_id)) or o.next_attempt_ms,
                           attempt=o.attempt)
        else:
            details = json.loads(o.details_json) if o.details_json else {}
            item = Waiting("chained-invoke", o.name, o.op_id, None,
                           chained_arn=details.get("DurableExecutionArn") if isinstance(details, dict) else None)
        items.setdefault(eid, []).append(item)
    return tuple(Suspended(r.arn, r.name, r.function_name, r.start_ms, r.since_ms,
                           tuple(items.get(r.execution_id, ()))) for r in rows)
