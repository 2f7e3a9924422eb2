"""The rows one write transaction reads and changes.

The control plane's hot path (one transaction per checkpoint) cannot afford the ORM's
unit of work: profiling showed ~5 ms of the ORM's bookkeeping around a handful of
SQLite statements that take ~0.2 ms (and SQLAlchemy Core still ~150 us per statement,
see ``recorder.store.sql``). So a transaction loads plain row objects into a
``Workset``, the projector mutates them and marks them, and ``flush`` writes what
changed with a few fixed statements (executemany where it can). The ORM models stay
the schema's definition and serve the read side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection

from recorder.store.log import insert_held
from recorder.store.models import Callback, Execution, Operation, StepRun, Timer, table_of
from recorder.store.sql import Raw, placeholders

EXECUTIONS = table_of(Execution)
OPERATIONS = table_of(Operation)
CALLBACKS = table_of(Callback)
TIMERS = table_of(Timer)
STEP_RUNS = table_of(StepRun)


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
    active_ms: int


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


EXEC_COLS = _names(ExecRow)
OP_COLS = _names(OpRow)
CB_COLS = _names(CallbackRow)
STATE_COLS = _names(StateRow)


def _insert_sql(table: str, cols: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"


def _update_sql(table: str, pk: list[str], cols: list[str]) -> str:
    sets = ", ".join(f"{c} = :{c}" for c in cols if c not in pk)
    where = " AND ".join(f"{k} = :{k}" for k in pk)
    return f"UPDATE {table} SET {sets} WHERE {where}"


_EXEC_SELECT = ", ".join(f"e.{c}" for c in EXEC_COLS)
_STATE_SELECT = ", ".join(f"s.{c}" for c in STATE_COLS)
_OP_SELECT = ", ".join(OP_COLS)
_CB_SELECT = ", ".join(CB_COLS)

# The first statement of most transactions: the execution, its engine state and the
# earliest due WAIT/retry timer, in one round trip. On PostgreSQL it locks both rows
# (plain FOR UPDATE): a locking SELECT that had to wait re-reads the rows it locks, so
# both come back as the lock holder committed them. Only the timers subquery may be
# from before the wait, and it is a hint: a due timer it misses is still fired by the
# engine's timer loop.
_LOCK_SQL = (
    f"SELECT {_EXEC_SELECT}, {_STATE_SELECT}, "
    "(SELECT MIN(t.due_ms) FROM timers t WHERE t.execution_id = e.execution_id AND t.kind IN ('wait', 'retry')) "
    "FROM executions e JOIN engine_state s ON s.execution_id = e.execution_id WHERE e.execution_id = :eid"
)
_SELECT_EXEC = f"SELECT {', '.join(EXEC_COLS)} FROM executions WHERE execution_id = :eid"
_SELECT_OP = f"SELECT {_OP_SELECT} FROM operations WHERE execution_id = :eid AND op_id = :op"
_SELECT_CB = f"SELECT {_CB_SELECT} FROM callbacks WHERE callback_id = :cb"
_INSERT = {
    "exec": _insert_sql("executions", EXEC_COLS),
    "op": _insert_sql("operations", OP_COLS),
    "cb": _insert_sql("callbacks", CB_COLS),
    "state": _insert_sql("engine_state", STATE_COLS),
}
_TABLES = {"exec": "executions", "op": "operations", "cb": "callbacks", "state": "engine_state"}
_PK = {"exec": ("execution_id",), "op": ("execution_id", "op_id"), "cb": ("callback_id",), "state": ("execution_id",)}
_COLS = {"exec": EXEC_COLS, "op": OP_COLS, "cb": CB_COLS, "state": STATE_COLS}
# A row's values in column order (one C call: the generator it replaced was ~40 us of a
# checkpoint), and the positions of the columns an UPDATE may set (all but the key).
_VALUES_OF: dict[str, Callable[[Any], tuple[Any, ...]]] = {kind: attrgetter(*cols) for kind, cols in _COLS.items()}
_DATA_COLUMNS = {kind: tuple(i for i, c in enumerate(cols) if c not in _PK[kind]) for kind, cols in _COLS.items()}
# UPDATE statements by (kind, the columns that changed), made on first use.
_UPDATES: dict[tuple[str, tuple[str, ...]], str] = {}


def _update_for(kind: str, changed: tuple[str, ...]) -> str:
    sql = _UPDATES.get((kind, changed))
    if sql is None:
        sql = _UPDATES[(kind, changed)] = _update_sql(_TABLES[kind], list(_PK[kind]), list(_PK[kind] + changed))
    return sql


def _key(kind: str, row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, k) for k in _PK[kind])


_UPSERT_TIMER = (
    "INSERT INTO timers (execution_id, kind, op_id, due_ms) VALUES (:execution_id, :kind, :op_id, :due_ms) "
    "ON CONFLICT (execution_id, kind, op_id) DO UPDATE SET due_ms = excluded.due_ms"
)
_DELETE_TIMER = "DELETE FROM timers WHERE execution_id = :execution_id AND kind = :kind AND op_id = :op_id"
_DELETE_TIMERS_OF = "DELETE FROM timers WHERE execution_id = :execution_id"
# The statistics' narrow copy of each STEP operation (recorder.store.models.StepRun),
# written with the operation so the two never disagree.
_UPSERT_STEP_RUN = (
    "INSERT INTO step_runs (execution_id, op_id, function_name, exec_start_ms, name, duration_ms, retries, failed) "
    "VALUES (:execution_id, :op_id, :function_name, :exec_start_ms, :name, :duration_ms, :retries, :failed) "
    "ON CONFLICT (execution_id, op_id) DO UPDATE SET name = excluded.name, duration_ms = excluded.duration_ms, "
    "retries = excluded.retries, failed = excluded.failed"
)


def step_run(op: OpRow, execution: ExecRow) -> dict[str, Any]:
    """The ``step_runs`` row of a STEP operation (the migration's backfill computes the same in SQL)."""
    return {
        "execution_id": op.execution_id,
        "op_id": op.op_id,
        "function_name": execution.function_name,
        "exec_start_ms": execution.start_ms,
        "name": op.name,
        "duration_ms": None if op.end_ms is None else op.end_ms - op.start_ms,
        "retries": max(0, op.attempt - 1),
        "failed": 1 if op.status == "FAILED" else 0,
    }


class Workset:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.raw = Raw(conn)
        self._execs: dict[str, ExecRow | None] = {}
        self._ops: dict[tuple[str, str], OpRow | None] = {}
        self._cbs: dict[str, CallbackRow | None] = {}
        self._states: dict[str, StateRow] = {}
        self._locked: dict[str, tuple[ExecRow, StateRow, int | None]] = {}
        self._new: dict[str, dict[Any, Any]] = {"exec": {}, "op": {}, "cb": {}, "state": {}}
        self._dirty: dict[str, dict[Any, Any]] = {"exec": {}, "op": {}, "cb": {}, "state": {}}
        # Each row's values as last read or written: an UPDATE sets only the columns that
        # differ. Setting every column cost SQLite ~70 us more a row (index upkeep for the
        # indexed ones), several times per checkpoint.
        self._stored: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]] = {}
        self._timers: dict[tuple[str, str, str], int | None] = {}
        self._clear_timers: set[str] = set()
        self._occurrences: list[Any] = []  # recorder.store.error_index rows, insert-only
        # PostgreSQL: event rows appended in this transaction, inserted by the flush.
        self._held_events: list[dict[str, Any]] = []
        # Due times of timers set in this transaction, so the engine can wake for them.
        self.timer_dues: list[int] = []

    # --- loading ----------------------------------------------------------------------

    def lock(self, execution_id: str, skip_locked: bool = False) -> tuple[ExecRow, StateRow, int | None] | None:
        """Load (and on PostgreSQL row-lock) an execution with its engine state. With
        ``skip_locked`` a row another transaction holds reads as absent (claims that
        another engine is already making are not waited for)."""
        locked = self._locked.get(execution_id)
        if locked is not None:
            return locked  # held by this transaction already: its rows may have changed here
        lock = (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE") if self.raw.postgres else ""
        sql = _LOCK_SQL + lock
        row = self.raw.one(sql, {"eid": execution_id})
        if row is None:
            return None
        n = len(EXEC_COLS)
        ex = self._loaded("exec", ExecRow, row[:n])
        st = self._loaded("state", StateRow, row[n : n + len(STATE_COLS)])
        self._execs[execution_id] = ex
        self._states[execution_id] = st
        self._locked[execution_id] = (ex, st, row[-1])
        return self._locked[execution_id]

    def _loaded(self, kind: str, cls: Any, values: Any) -> Any:
        row = cls(*values)
        self._stored[(kind, _key(kind, row))] = tuple(values)
        return row

    def execution(self, execution_id: str) -> ExecRow | None:
        if execution_id not in self._execs:
            row = self.raw.one(_SELECT_EXEC, {"eid": execution_id})
            self._execs[execution_id] = self._loaded("exec", ExecRow, row) if row else None
        return self._execs[execution_id]

    def state(self, execution_id: str) -> StateRow:
        """The engine state of an execution this transaction locked or created."""
        return self._states[execution_id]

    def preload_ops(self, execution_id: str, ids: set[str]) -> dict[str, OpRow]:
        missing = [i for i in ids if (execution_id, i) not in self._ops]
        if missing:
            params: dict[str, Any] = {"eid": execution_id}
            in_list = placeholders("i", missing, params)
            for row in self.raw.all(
                f"SELECT {_OP_SELECT} FROM operations WHERE execution_id = :eid AND op_id IN ({in_list})", params
            ):
                op = self._loaded("op", OpRow, row)
                self._ops[(execution_id, op.op_id)] = op
            for i in missing:
                self._ops.setdefault((execution_id, i), None)
        return {i: op for i in ids if (op := self._ops[(execution_id, i)]) is not None}

    def op(self, execution_id: str, op_id: str) -> OpRow | None:
        key = (execution_id, op_id)
        if key not in self._ops:
            row = self.raw.one(_SELECT_OP, {"eid": execution_id, "op": op_id})
            self._ops[key] = self._loaded("op", OpRow, row) if row else None
        return self._ops[key]

    def callback(self, callback_id: str) -> CallbackRow | None:
        if callback_id not in self._cbs:
            row = self.raw.one(_SELECT_CB, {"cb": callback_id})
            self._cbs[callback_id] = self._loaded("cb", CallbackRow, row) if row else None
        return self._cbs[callback_id]

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
        execution = self._execs.get(execution_id)
        if execution is not None and execution.imported:
            return  # imported histories are read-only: nothing is ever due for them
        self._timers[(execution_id, kind, op_id)] = due_ms
        self.timer_dues.append(due_ms)

    def clear_timer(self, execution_id: str, kind: str, op_id: str) -> None:
        self._timers[(execution_id, kind, op_id)] = None

    def clear_all_timers(self, execution_id: str) -> None:
        self._clear_timers.add(execution_id)
        for key in [k for k in self._timers if k[0] == execution_id]:
            del self._timers[key]

    def hold_events(self, rows: list[dict[str, Any]]) -> None:
        """PostgreSQL: event rows to insert with the flush (``recorder.store.log.append``)."""
        self._held_events.extend(rows)

    def add_occurrence(self, row: Any) -> None:
        self._occurrences.append(row)

    # --- writing ----------------------------------------------------------------------

    def _update(self, kind: str, rows: Any) -> None:
        cols, values_of, data_columns = _COLS[kind], _VALUES_OF[kind], _DATA_COLUMNS[kind]
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            key = (kind, _key(kind, r))
            now = values_of(r)
            before = self._stored.get(key)
            if before is None:
                changed = tuple(cols[i] for i in data_columns)
            else:
                changed = tuple(cols[i] for i in data_columns if before[i] != now[i])
            self._stored[key] = now
            if changed:
                groups.setdefault(changed, []).append(dict(zip(cols, now, strict=True)))
        for changed, params in groups.items():
            self.raw.many(_update_for(kind, changed), params)

    @property
    def dirty(self) -> bool:
        """Whether ``flush`` has anything to write."""
        return (
            any(self._new.values())
            or any(self._dirty.values())
            or bool(self._timers)
            or bool(self._clear_timers)
            or bool(self._held_events)
        )

    def flush(self) -> None:
        """Write every change of this transaction (nothing here reads a result back, so on
        PostgreSQL the statements go in one round trip)."""
        steps = self._step_runs()  # may read an execution row: before the batch
        with self.raw.batch():
            self._flush(steps)

    def _step_runs(self) -> list[dict[str, Any]]:
        out = []
        for kind in ("_new", "_dirty"):
            for op in getattr(self, kind)["op"].values():
                if op.type == "STEP":
                    execution = self.execution(op.execution_id)
                    if execution is not None:
                        out.append(step_run(op, execution))
        return out

    def _flush(self, steps: list[dict[str, Any]]) -> None:
        raw = self.raw
        if self._held_events:
            # First: the error occurrences below take their positions from these rows.
            insert_held(raw, self._held_events)
            self._held_events = []
        for kind in ("exec", "state", "op", "cb"):
            rows = self._new[kind]
            if rows:
                cols, values_of = _COLS[kind], _VALUES_OF[kind]
                params = [dict(zip(cols, values_of(r), strict=True)) for r in rows.values()]
                raw.many(_INSERT[kind], params)
                for r, p in zip(rows.values(), params, strict=True):
                    self._stored[(kind, _key(kind, r))] = tuple(p.values())
        for kind in ("exec", "op", "cb", "state"):
            rows = self._dirty[kind]
            if rows:
                self._update(kind, rows.values())
        for execution_id in self._clear_timers:
            raw.run(_DELETE_TIMERS_OF, {"execution_id": execution_id})
        deletes = [{"execution_id": k[0], "kind": k[1], "op_id": k[2]} for k, v in self._timers.items() if v is None]
        upserts = [
            {"execution_id": k[0], "kind": k[1], "op_id": k[2], "due_ms": v}
            for k, v in self._timers.items()
            if v is not None
        ]
        raw.many(_DELETE_TIMER, deletes)
        raw.many(_UPSERT_TIMER, upserts)
        raw.many(_UPSERT_STEP_RUN, steps)
        if self._occurrences:
            from recorder.store.error_index import insert_many

            insert_many(raw, self._occurrences)
            self._occurrences.clear()
        for d in self._new.values():
            d.clear()
        for d in self._dirty.values():
            d.clear()
        self._timers.clear()
        self._clear_timers.clear()
