"""The rows one write transaction reads and changes, flushed with SQLAlchemy Core.

The control plane's hot path (one transaction per checkpoint) cannot afford the ORM's
unit of work: profiling showed ~5 ms of the ORM's bookkeeping around a handful of
SQLite statements that take ~0.2 ms. So a transaction loads plain row objects into a
``Workset``, the projector mutates them and marks them, and ``flush`` writes what
changed with a few pre-built statements (executemany where it can). The ORM models
stay the schema's definition and serve the read side.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update

from recorder.store.models import Callback, EngineState, Execution, Operation, Timer

EXECUTIONS = Execution.__table__
OPERATIONS = Operation.__table__
CALLBACKS = Callback.__table__
TIMERS = Timer.__table__
ENGINE_STATE = EngineState.__table__


@dataclass(slots=True)
class ExecRow:
    execution_id: str
    arn: str
    function_name: str
    function_version: str
    name: str
    status: str
    input_payload: str | None
    result: str | None
    error_json: str | None
    error_type: str | None
    start_ms: int
    end_ms: int | None
    execution_timeout: int
    retention_days: int
    last_event_id: int
    last_ts_ms: int
    invocation_count: int
    op_count: int
    parent_arn: str | None
    parent_op_id: str | None
    imported: bool


@dataclass(slots=True)
class OpRow:
    execution_id: str
    op_id: str
    seq: int
    type: str
    sub_type: str | None
    name: str | None
    parent_id: str | None
    status: str
    start_ms: int
    end_ms: int | None
    attempt: int
    next_attempt_ms: int | None
    result: str | None
    error_json: str | None
    replay_children: bool | None
    details_json: str | None
    changed_position: int


@dataclass(slots=True)
class CallbackRow:
    callback_id: str
    execution_id: str
    op_id: str
    status: str
    timeout_seconds: int
    heartbeat_timeout_seconds: int
    started_ms: int
    last_heartbeat_ms: int | None
    end_ms: int | None


@dataclass(slots=True)
class StateRow:
    execution_id: str
    token: str | None
    token_seq: int
    invocation_seq: int
    request_id: str | None
    invocation_start_ms: int | None
    lease_owner: str | None
    lease_expires_ms: int | None
    invoke_wanted: bool
    next_invoke_ms: int
    pending_ops_json: str
    updated_ops_json: str
    changed_while_running: bool
    consecutive_failures: int
    invalid_pending: int
    last_client_token: str | None
    last_client_inbound: str | None
    last_client_response: str | None
    last_client_ms: int | None


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _values(row: Any, names: list[str]) -> dict[str, Any]:
    return {n: getattr(row, n) for n in names}


EXEC_COLS = _names(ExecRow)
OP_COLS = _names(OpRow)
CB_COLS = _names(CallbackRow)
STATE_COLS = _names(StateRow)


def _update_by_pk(table: Any, pk: list[str], cols: list[str]) -> Any:
    stmt = update(table)
    for k in pk:
        stmt = stmt.where(table.c[k] == bindparam(f"pk_{k}"))
    return stmt.values({c: bindparam(c) for c in cols if c not in pk})


_UPDATE_EXEC = _update_by_pk(EXECUTIONS, ["execution_id"], EXEC_COLS)
_UPDATE_OP = _update_by_pk(OPERATIONS, ["execution_id", "op_id"], OP_COLS)
_UPDATE_CB = _update_by_pk(CALLBACKS, ["callback_id"], CB_COLS)
_UPDATE_STATE = _update_by_pk(ENGINE_STATE, ["execution_id"], STATE_COLS)
_UPSERT_TIMER = text(
    "INSERT INTO timers (execution_id, kind, op_id, due_ms) VALUES (:execution_id, :kind, :op_id, :due_ms) "
    "ON CONFLICT (execution_id, kind, op_id) DO UPDATE SET due_ms = excluded.due_ms"
)
_DELETE_TIMER = delete(TIMERS).where(
    TIMERS.c.execution_id == bindparam("execution_id"), TIMERS.c.kind == bindparam("kind"),
    TIMERS.c.op_id == bindparam("op_id"))

# The first statement of most transactions: the execution, its engine state and the
# earliest due WAIT/retry timer, in one round trip (row-locked on PostgreSQL).
_NEXT_OP_TIMER = (
    select(func.min(TIMERS.c.due_ms))
    .where(TIMERS.c.execution_id == EXECUTIONS.c.execution_id, TIMERS.c.kind.in_(("wait", "retry")))
    .scalar_subquery()
)


# Locks both rows (plain FOR UPDATE, not FOR UPDATE OF one table): a locking SELECT
# that had to wait re-reads the rows it locks, so both come back as the lock holder
# committed them. Only the timers subquery may be from before the wait, and it is a
# hint: a due timer it misses is still fired by the engine's timer loop.
_SELECT_LOCKED = (
    select(*[EXECUTIONS.c[c] for c in EXEC_COLS],
           *[ENGINE_STATE.c[c].label(f"s_{c}") for c in STATE_COLS],
           _NEXT_OP_TIMER.label("next_op_timer"))
    .join_from(EXECUTIONS, ENGINE_STATE, ENGINE_STATE.c.execution_id == EXECUTIONS.c.execution_id)
    .where(EXECUTIONS.c.execution_id == bindparam("eid"))
    .with_for_update()
)
_SELECT_OPS_IN = select(OPERATIONS).where(
    OPERATIONS.c.execution_id == bindparam("eid"), OPERATIONS.c.op_id.in_(bindparam("ids", expanding=True)))
_SELECT_OP = select(OPERATIONS).where(
    OPERATIONS.c.execution_id == bindparam("eid"), OPERATIONS.c.op_id == bindparam("op"))
_SELECT_EXEC = select(EXECUTIONS).where(EXECUTIONS.c.execution_id == bindparam("eid"))
_SELECT_CB = select(CALLBACKS).where(CALLBACKS.c.callback_id == bindparam("cb"))

_MISSING = object()


class Workset:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._execs: dict[str, ExecRow | None] = {}
        self._ops: dict[tuple[str, str], OpRow | None] = {}
        self._cbs: dict[str, CallbackRow | None] = {}
        self._states: dict[str, StateRow] = {}
        self._new: dict[str, dict[Any, Any]] = {"exec": {}, "op": {}, "cb": {}, "state": {}}
        self._dirty: dict[str, dict[Any, Any]] = {"exec": {}, "op": {}, "cb": {}, "state": {}}
        self._timers: dict[tuple[str, str, str], int | None] = {}
        self._clear_timers: set[str] = set()
        # Due times of timers set in this transaction, so the engine can wake for them.
        self.timer_dues: list[int] = []

    # --- loading ----------------------------------------------------------------------

    def lock(self, execution_id: str) -> tuple[ExecRow, StateRow, int | None] | None:
        """Load (and on PostgreSQL row-lock) an execution with its engine state."""
        row = self.conn.execute(_SELECT_LOCKED, {"eid": execution_id}).first()
        if row is None:
            return None
        m = row._mapping
        ex = ExecRow(**{c: m[c] for c in EXEC_COLS})
        st = StateRow(**{c: m[f"s_{c}"] for c in STATE_COLS})
        self._execs[execution_id] = ex
        self._states[execution_id] = st
        return ex, st, m["next_op_timer"]

    def execution(self, execution_id: str) -> ExecRow | None:
        if execution_id not in self._execs:
            row = self.conn.execute(_SELECT_EXEC, {"eid": execution_id}).first()
            self._execs[execution_id] = ExecRow(**{c: row._mapping[c] for c in EXEC_COLS}) if row else None
        return self._execs[execution_id]

    def preload_ops(self, execution_id: str, ids: set[str]) -> dict[str, OpRow]:
        missing = [i for i in ids if (execution_id, i) not in self._ops]
        if missing:
            for row in self.conn.execute(_SELECT_OPS_IN, {"eid": execution_id, "ids": missing}):
                op = OpRow(**{c: row._mapping[c] for c in OP_COLS})
                self._ops[(execution_id, op.op_id)] = op
            for i in missing:
                self._ops.setdefault((execution_id, i), None)
        return {i: op for i in ids if (op := self._ops[(execution_id, i)]) is not None}

    def op(self, execution_id: str, op_id: str) -> OpRow | None:
        key = (execution_id, op_id)
        if key not in self._ops:
            row = self.conn.execute(_SELECT_OP, {"eid": execution_id, "op": op_id}).first()
            self._ops[key] = OpRow(**{c: row._mapping[c] for c in OP_COLS}) if row else None
        return self._ops[key]

    def callback(self, callback_id: str) -> CallbackRow | None:
        if callback_id not in self._cbs:
            row = self.conn.execute(_SELECT_CB, {"cb": callback_id}).first()
            self._cbs[callback_id] = CallbackRow(**{c: row._mapping[c] for c in CB_COLS}) if row else None
        return self._cbs[callback_id]

    def adopt_ops(self, ops: list[OpRow]) -> None:
        for op in ops:
            self._ops[(op.execution_id, op.op_id)] = op

    # --- changes ----------------------------------------------------------------------

    def add_execution(self, row: ExecRow) -> None:
        self._execs[row.execution_id] = row
        self._new["exec"][row.execution_id] = row

    def touch_execution(self, row: ExecRow) -> None:
        if row.execution_id not in self._new["exec"]:
            self._dirty["exec"][row.execution_id] = row

    def add_state(self, row: StateRow) -> None:
        self._states[row.execution_id] = row
        self._new["state"][row.execution_id] = row

    def touch_state(self, row: StateRow) -> None:
        if row.execution_id not in self._new["state"]:
            self._dirty["state"][row.execution_id] = row

    def add_op(self, row: OpRow) -> None:
        key = (row.execution_id, row.op_id)
        self._ops[key] = row
        self._new["op"][key] = row

    def touch_op(self, row: OpRow) -> None:
        key = (row.execution_id, row.op_id)
        if key not in self._new["op"]:
            self._dirty["op"][key] = row

    def add_callback(self, row: CallbackRow) -> None:
        self._cbs[row.callback_id] = row
        self._new["cb"][row.callback_id] = row

    def touch_callback(self, row: CallbackRow) -> None:
        if row.callback_id not in self._new["cb"]:
            self._dirty["cb"][row.callback_id] = row

    def set_timer(self, execution_id: str, kind: str, op_id: str, due_ms: int) -> None:
        self._timers[(execution_id, kind, op_id)] = due_ms
        self.timer_dues.append(due_ms)

    def clear_timer(self, execution_id: str, kind: str, op_id: str) -> None:
        self._timers[(execution_id, kind, op_id)] = None

    def clear_all_timers(self, execution_id: str) -> None:
        self._clear_timers.add(execution_id)
        for key in [k for k in self._timers if k[0] == execution_id]:
            del self._timers[key]

    # --- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        c = self.conn
        if self._new["exec"]:
            c.execute(insert(EXECUTIONS), [_values(r, EXEC_COLS) for r in self._new["exec"].values()])
        if self._new["state"]:
            c.execute(insert(ENGINE_STATE), [_values(r, STATE_COLS) for r in self._new["state"].values()])
        if self._new["op"]:
            c.execute(insert(OPERATIONS), [_values(r, OP_COLS) for r in self._new["op"].values()])
        if self._new["cb"]:
            c.execute(insert(CALLBACKS), [_values(r, CB_COLS) for r in self._new["cb"].values()])
        for kind, stmt, cols, pk in (("exec", _UPDATE_EXEC, EXEC_COLS, ["execution_id"]),
                                     ("op", _UPDATE_OP, OP_COLS, ["execution_id", "op_id"]),
                                     ("cb", _UPDATE_CB, CB_COLS, ["callback_id"]),
                                     ("state", _UPDATE_STATE, STATE_COLS, ["execution_id"])):
            rows = self._dirty[kind]
            if rows:
                params = []
                for r in rows.values():
                    p = _values(r, cols)
                    for k in pk:
                        p[f"pk_{k}"] = p.pop(k)
                    params.append(p)
                c.execute(stmt, params)
        if self._clear_timers:
            c.execute(delete(TIMERS).where(TIMERS.c.execution_id.in_(list(self._clear_timers))))
        deletes = [{"execution_id": k[0], "kind": k[1], "op_id": k[2]} for k, v in self._timers.items() if v is None]
        upserts = [{"execution_id": k[0], "kind": k[1], "op_id": k[2], "due_ms": v}
                   for k, v in self._timers.items() if v is not None]
        if deletes:
            c.execute(_DELETE_TIMER, deletes)
        if upserts:
            c.execute(_UPSERT_TIMER, upserts)
        for d in self._new.values():
            d.clear()
        for d in self._dirty.values():
            d.clear()
        self._timers.clear()
        self._clear_timers.clear()


