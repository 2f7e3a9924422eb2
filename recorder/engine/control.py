"""The control plane: every state change of an execution goes through here.

Each public method is one write transaction: lock the execution's ``engine_state``
row, check, decide the events, append them and fold them into the projections
(``recorder.store``), then commit. Nothing is applied before every update of a
checkpoint has been validated, so a rejected request changes nothing (invariant 8).
After commit, listeners (the local engine) are told which executions want an
invocation and when the next timer is due; the database stays the truth and a
restarted engine recovers the same work from it.

Choices the spec leaves open (spec section 10), kept here so they are easy to change:

* Execution events carry the EXECUTION op Id and the execution name as ``Name``.
* ``RetryDetails {CurrentAttempt: n}`` on every StepSucceeded/StepFailed.
* ``CallbackStarted`` omits ``Timeout``/``HeartbeatTimeout`` when 0.
* Due WAIT/retry timers of the execution complete *before* a checkpoint's updates.
* An EXECUTION checkpoint appends the terminal event at once; ``InvocationCompleted``
  follows when the invocation returns.
* A crashed invocation (exception, lost engine) is retried after
  ``invocation_retry_seconds`` x attempt, and the execution fails after
  ``max_invocation_attempts`` consecutive failures; an invalid PENDING is retried 3 times.
* Timeout texts: "Execution timed out after N seconds.", "Callback timed out",
  "Callback timed out on heartbeat"; default stop message "Execution stopped by user request".
* Unknown execution → ResourceNotFoundException; closed/completed callback →
  CallbackTimeoutException; unknown callback id → ResourceNotFoundException.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update

from recorder.arns import NAME_RE, ExecutionArn, function_arn, parse_function_name
from recorder.config import Settings
from recorder.engine import tokens
from recorder.errors import (
    CallbackTimeoutException,
    DurableExecutionAlreadyStartedException,
    InvalidParameterValueException,
    RequestTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    invalid_token,
)
from recorder.store.db import Database
from recorder.store.events import (
    CALLBACK_HEARTBEAT,
    CALLBACK_RECEIVED,
    INVOCATION_STARTED,
    OPEN_STATUSES,
    PAUSE_CANCELLED,
    PAUSE_REQUESTED,
    STEP_READY,
    NewEvent,
    OpIdentity,
    StoredEvent,
    error_envelope,
    payload_envelope,
)
from recorder.store.log import append, purge_execution
from recorder.store.models import Callback, EngineState, Execution, Function, LogLine
from recorder.store.sql import Raw
from recorder.store.workset import OP_COLS, ExecRow, OpRow, StateRow, Workset
from recorder.store.projector import (
    CALLBACK_HEARTBEAT_TIMEOUT,
    CALLBACK_TIMEOUT,
    EXECUTION_TIMEOUT,
    PURGE,
    RETRY,
    WAIT,
    Projector,
)
from recorder.wire import (
    MAX_PAYLOAD,
    ErrorObject,
    Update,
    operation_to_wire,
    parse_updates,
    refuse_nul,
    ts_ms,
)

TERMINAL_OP = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "STOPPED"})
CLIENT_TOKEN_WINDOW_MS = 15 * 60 * 1000
MAX_INVALID_PENDING = 3
STATE_PAGE_BYTES = 5 * 1024 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def normalize_input(payload: str | bytes | None) -> str | None:
    """Store valid JSON only: a non-JSON input would crash the handler (spec 2.1)."""
    if payload is None:
        return None
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidParameterValueException("Payload must be UTF-8 text") from exc
    if payload.strip() == "":
        return None
    try:
        json.loads(payload)
        return payload
    except ValueError:
        return json.dumps(payload)


# --- typed values crossing the control plane's boundary -----------------------------


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    code_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 900
    execution_timeout: int = 86400
    retention_days: int = 14
    concurrency: int = 0

    @classmethod
    def from_row(cls, row: Function) -> FunctionSpec:
        return cls(row.name, row.handler, row.code_dir, json.loads(row.env_json or "{}"), row.timeout_seconds,
                   row.execution_timeout_seconds, row.retention_days, row.concurrency)


@dataclass(frozen=True)
class StartResult:
    arn: str
    execution_id: str
    created: bool


@dataclass(frozen=True)
class InvocationInput:
    execution_id: str
    arn: str
    request_id: str
    token: str
    operations: list[dict[str, Any]]
    next_marker: str
    updated_operation_ids: list[str]
    function: FunctionSpec
    start_ms: int


@dataclass(frozen=True)
class InvocationOutcome:
    """What an invocation came back with. ``status`` is SUCCEEDED, FAILED, PENDING,
    ERROR (the invocation itself failed: exception, crash, timeout) or INVALID
    (output that is not an envelope)."""

    status: str
    result: str | None = None
    error: dict[str, Any] | None = None
    has_result: bool = False
    has_error: bool = False

    @classmethod
    def from_envelope(cls, output: Any) -> InvocationOutcome:
        if not isinstance(output, dict) or output.get("Status") not in ("SUCCEEDED", "FAILED", "PENDING"):
            return cls("INVALID", error={"ErrorType": "InvalidParameterValueException",
                                         "ErrorMessage": f"Invalid handler output: {str(output)[:500]}"})
        err = output.get("Error")
        result = output.get("Result")
        if result is not None and (not isinstance(result, str) or "\x00" in result):
            # The store keeps a result verbatim as text, and PostgreSQL text cannot hold U+0000.
            return cls("INVALID", error={"ErrorType": "InvalidParameterValueException",
                                         "ErrorMessage": "Invalid handler output: Result must be a string "
                                                         "without NUL (U+0000) characters"})
        return cls(output["Status"], result=result, error=err if isinstance(err, dict) else None,
                   has_result="Result" in output and output.get("Result") not in (None, ""),
                   has_error=err is not None)


@dataclass
class _Sim:
    """The part of an operation that checkpoint validation reads."""

    type: str
    status: str
    sub_type: str | None
    name: str | None
    parent_id: str | None
    attempt: int


# How often every engine re-reads due timers and owed invocations from the database
# (``Engine``'s sweep): what other engines write is found within this even unannounced.
SWEEP_SECONDS = 1.0


@dataclass
class _Tx:
    """What one transaction owes the engine once it has committed."""

    invoke: set[str] = field(default_factory=set)
    timer_dues: list[int] = field(default_factory=list)
    # ARNs of the executions this transaction closed.
    closed: list[str] = field(default_factory=list)


Listener = Callable[[set[str], list[int]], None]
CloseListener = Callable[[list[str]], None]


class StartClaimer(Protocol):
    """An engine in this process that takes the first invocation of the executions started
    here, in the transaction that starts them (``ControlPlane.start_claimer``)."""

    def reserve(self, execution_id: str) -> str | None:
        """The lease owner's name if a free invocation slot is now held for this execution."""

    def release(self, execution_id: str) -> None:
        """Give back a reserved slot whose claim did not commit."""

    def run(self, inv: InvocationInput) -> None:
        """Run a committed claim."""


class ControlPlane:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # Names this process in notifications, so it can ignore its own.
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._listeners: list[Listener] = []
        self._close_listeners: list[CloseListener] = []
        # Set by a local engine: a started execution's first invocation is claimed in the
        # starting transaction instead of in a second one on an engine thread. That was a
        # write transaction (and a thread hand-off) per execution: ~0.4 ms of the engine's
        # ~3.5 ms an execution in bench/'s W4.
        self.start_claimer: StartClaimer | None = None
        self._fn_cache: dict[str, FunctionSpec] = {}
        self._fn_lock = threading.Lock()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_close_listener(self, listener: CloseListener) -> None:
        """``listener(arns)`` after each commit that closed executions (recorder.engine.closings)."""
        self._close_listeners.append(listener)

    def _emit(self, tx: _Tx) -> None:
        if tx.closed:
            for close_listener in self._close_listeners:
                close_listener(tx.closed)
        if tx.invoke or tx.timer_dues:
            for listener in self._listeners:
                listener(set(tx.invoke), list(tx.timer_dues))
            if self.db.dialect == "postgresql":
                self._notify(tx)

    def _notify(self, tx: _Tx) -> None:
        """Wake the other engines on this database (LISTEN durascope_work) for what their
        sweep would find late: invocations nobody claimed, and timers due before their next
        sweep. Every start and every close sets a timer a day or more away (the execution
        timeout, the retention purge), which each engine's sweep reads anyway; telling them
        cost a transaction of three round trips per start and per close. The notification
        is one autocommit statement after the commit, not part of the transaction: a
        NOTIFY that fails (a full queue fails at COMMIT) must not undo the work."""
        soon = [d for d in tx.timer_dues if d < now_ms() + SWEEP_SECONDS * 1000]
        if not tx.invoke and not soon:
            return
        payload = json.dumps({"o": self.owner, "i": sorted(tx.invoke)[:100], "t": min(soon) if soon else None})
        try:
            with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                Raw(conn).one("SELECT pg_notify('durascope_work', :p)", {"p": payload})
        except Exception:  # noqa: BLE001 - a lost wake-up only delays work until the next sweep
            pass

    # --- common transaction pieces ------------------------------------------------------

    def _lock(self, ws: Workset, execution_id: str) -> tuple[ExecRow, StateRow, int | None]:
        got = ws.lock(execution_id)
        if got is None:
            raise ResourceNotFoundException(f"Durable execution not found: {execution_id}")
        self._lock_parent(ws, got[0])
        return got

    @staticmethod
    def _lock_parent(ws: Workset, execution: ExecRow) -> None:
        """A chained child's transaction may close it and then complete its parent's op
        (``_complete_parent``), which locks the parent's row. By then the child's events are
        appended, and on PostgreSQL an append holds the one append lock until commit while
        the parent's own transactions take the parent's row first and the append lock
        second: a deadlock, which PostgreSQL breaks after a second by failing one of them
        (seen as a failed checkpoint in the conformance suite under load). So the parent's
        row is locked up front, before anything is appended: row locks, child before
        parent, then the append lock, in every transaction."""
        if execution.parent_arn and execution.parent_op_id:
            ws.lock(ExecutionArn.parse(execution.parent_arn).execution_id)

    def _append(self, ws: Workset, tx: _Tx, execution_id: str, events: list[NewEvent], now: int) -> list[StoredEvent]:
        stored = append(ws.conn, execution_id, ws.execution(execution_id) if events[0].event_type != "ExecutionStarted"
                        else None, events, now)
        projector = Projector(ws)
        for ev in stored:
            projector.apply(ev)
        tx.timer_dues.extend(ws.timer_dues)
        ws.timer_dues.clear()
        return stored

    def _mark_changed(self, ws: Workset, state: StateRow, tx: _Tx, op_ids: Iterable[str], now: int) -> None:
        """An op changed behind the handler's back: deliver it, and invoke if idle."""
        ids = list(op_ids)
        updated = _loads(state.updated_ops_json, [])
        updated.extend(i for i in ids if i not in updated)
        state.updated_ops_json = json.dumps(updated)
        if state.request_id is not None:
            pending = _loads(state.pending_ops_json, [])
            pending.extend(i for i in ids if i not in pending)
            state.pending_ops_json = json.dumps(pending)
            state.changed_while_running = True
        else:
            self._want_invoke(state, tx, now)
        ws.touch_state(state)

    @staticmethod
    def _want_invoke(state: StateRow, tx: _Tx, at_ms: int) -> None:
        state.invoke_wanted = True
        state.next_invoke_ms = at_ms
        tx.invoke.add(state.execution_id)
        tx.timer_dues.append(at_ms)

    def _close(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow, event: NewEvent, now: int) -> None:
        """Append a terminal execution event, revoke tokens, tell a parent execution."""
        self._append(ws, tx, execution.execution_id, [event], now)
        tx.closed.append(execution.arn)
        state.token = None
        state.invoke_wanted = False
        state.pending_ops_json = "[]"
        ws.touch_state(state)
        if execution.parent_arn and execution.parent_op_id:
            self._complete_parent(ws, tx, execution, now)

    def _complete_parent(self, ws: Workset, tx: _Tx, child: ExecRow, now: int) -> None:
        parent_id = ExecutionArn.parse(child.parent_arn or "").execution_id
        got = ws.lock(parent_id)
        if got is None:
            return
        parent, pstate, _ = got
        op = ws.op(parent_id, child.parent_op_id or "")
        if parent.status not in OPEN_STATUSES or op is None or op.status != "STARTED":
            return
        if pstate.request_id is not None:
            return  # settled when the parent's running invocation ends (see _settle)
        self._append(ws, tx, parent_id, [_chained_outcome(op, child)], now)
        self._mark_changed(ws, pstate, tx, [op.op_id], now)

    def _settle(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow, now: int) -> None:
        """After an invocation ends: what came due while it ran, in order.

        While an invocation is in flight the backend does not complete its op timers
        or chained invokes on its own: the SDK only observes such completions when it
        polls (an empty refresh checkpoint, which does complete due timers), and
        otherwise suspends on them. Recording them after the InvocationCompleted keeps
        the history in the order the conformance requirements give, whatever the
        timing of the invocation's tail.
        """
        eid = execution.execution_id
        events: list[NewEvent] = []
        # One round trip for the three kinds of owed completion.
        owed = ws.raw.all(
            "SELECT 1, kind, op_id, due_ms FROM timers WHERE execution_id = :eid AND kind IN "
            "('wait', 'retry', 'callback-timeout', 'callback-heartbeat') AND due_ms <= :now "
            "UNION ALL SELECT 2, 'callback', op_id, 0 FROM callbacks WHERE execution_id = :eid AND status = 'RECEIVED' "
            "UNION ALL SELECT 3, 'chained', op_id, 0 FROM operations WHERE execution_id = :eid "
            "AND type = 'CHAINED_INVOKE' AND status = 'STARTED' ORDER BY 1, 4",
            {"eid": eid, "now": now})
        for source, kind, op_id, _ in owed:
            op = ws.op(eid, op_id)
            if op is None or any(e.op_id == op_id for e in events):
                continue
            ev: NewEvent | None = None
            if source == 1:
                ev = _timer_event(kind, op)
            elif source == 2 and op.status == "STARTED":
                received = ws.raw.one(
                    "SELECT body FROM events WHERE execution_id = :eid AND op_id = :op AND event_type = "
                    f"'{CALLBACK_RECEIVED}' ORDER BY position DESC LIMIT 1", {"eid": eid, "op": op_id})
                ev = _callback_outcome(op, json.loads(received[0])) if received else None
            elif source == 3:
                child_arn = _loads(op.details_json, {}).get("DurableExecutionArn")
                child = ws.execution(ExecutionArn.parse(child_arn).execution_id) if child_arn else None
                ev = _chained_outcome(op, child) if child is not None and child.status not in OPEN_STATUSES else None
            if ev is not None:
                events.append(ev)
        if events:
            self._append(ws, tx, eid, events, now)
            self._mark_changed(ws, state, tx, [e.op_id for e in events if e.op_id], now)

    # --- function registry ----------------------------------------------------------------

    def register_function(self, spec: FunctionSpec) -> None:
        if not NAME_RE.match(spec.name):
            raise InvalidParameterValueException("Function name must match [a-zA-Z0-9-_]{1,64}")
        if not spec.handler or len(spec.handler) > 512:
            raise InvalidParameterValueException("Handler must be given as pkg.module.function or pkg.module:function")
        for label, value, lo, hi in (("timeout", spec.timeout, 1, 900),
                                     ("execution timeout", spec.execution_timeout, 1, 31_622_400),
                                     ("retention days", spec.retention_days, 1, 90)):
            if not lo <= value <= hi:
                raise InvalidParameterValueException(f"{label} must be from {lo} to {hi}, got {value}")
        now = now_ms()
        values = {"handler": spec.handler, "code_dir": spec.code_dir, "env_json": json.dumps(spec.env, sort_keys=True),
                  "timeout_seconds": spec.timeout, "execution_timeout_seconds": spec.execution_timeout,
                  "retention_days": spec.retention_days, "concurrency": spec.concurrency, "updated_ms": now}
        table = Function.__table__
        with self.db.write() as conn:
            exists = conn.execute(select(table.c.name).where(table.c.name == spec.name)).first()
            if exists:
                conn.execute(update(table).where(table.c.name == spec.name).values(values))
            else:
                conn.execute(insert(table).values(name=spec.name, created_ms=now, **values))
        with self._fn_lock:
            self._fn_cache.pop(spec.name, None)

    def list_functions(self) -> list[FunctionSpec]:
        with self.db.read() as s:
            return [FunctionSpec.from_row(r) for r in s.scalars(select(Function).order_by(Function.name))]

    def get_function(self, name: str, conn: Connection | None = None) -> FunctionSpec | None:
        with self._fn_lock:
            cached = self._fn_cache.get(name)
        if cached is not None:
            return cached
        table = Function.__table__
        stmt = select(table).where(table.c.name == name)
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self.db.read() as s:
                row = s.execute(stmt).first()
        spec = FunctionSpec.from_row(row) if row else None
        if spec is not None:
            with self._fn_lock:
                self._fn_cache[name] = spec
        return spec

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.settings.region, self.settings.account_id, name, qualifier)

    # --- starting executions -------------------------------------------------------------

    def start_execution(self, function: str, payload: str | bytes | None = None, name: str | None = None,
                        qualifier: str | None = None) -> StartResult:
        ref = parse_function_name(function)
        qualifier = qualifier or ref.qualifier
        if qualifier not in (None, "$LATEST"):
            raise ResourceNotFoundException(
                f"Function not found: {self.function_arn(ref.name, qualifier)} (only $LATEST is served)")
        if name is not None and (not isinstance(name, str) or not NAME_RE.match(name)):
            raise InvalidParameterValueException("DurableExecutionName must match [a-zA-Z0-9-_]{1,64}")
        data = normalize_input(payload)
        if data is not None and len(data.encode("utf-8")) > 6 * 1024 * 1024:
            raise RequestTooLargeException("Payload is larger than 6 MB")
        tx = _Tx()
        claimer = self.start_claimer
        reserved: str | None = None
        claimed: InvocationInput | None = None
        try:
            with self.db.write() as conn:
                ws = Workset(conn)
                now = now_ms()
                result = self._start_in(ws, tx, ref.name, data, name, now)
                if result.created and claimer is not None:
                    owner = claimer.reserve(result.execution_id)
                    if owner is not None:
                        reserved = result.execution_id
                        execution = ws.execution(reserved)
                        spec = self.get_function(ref.name, conn)
                        assert execution is not None and spec is not None  # created just now
                        claimed = self._claim(ws, tx, execution, ws.state(reserved), spec, owner, now)
                ws.flush()
        except BaseException:
            if reserved is not None and claimer is not None:
                claimer.release(reserved)
            raise
        try:
            self._emit(tx)
        finally:
            if claimed is not None and claimer is not None:
                claimer.run(claimed)  # committed: whatever else happens, it must run
        return result

    def _start_in(self, ws: Workset, tx: _Tx, function: str, data: str | None, name: str | None, now: int,
                  parent: tuple[str, str] | None = None, execution_id: str | None = None) -> StartResult:
        spec = self.get_function(function, ws.conn)
        if spec is None:
            raise ResourceNotFoundException(f"Function not found: {self.function_arn(function)}")
        if name is not None:
            ex = Execution.__table__
            existing = ws.conn.execute(select(ex.c.arn, ex.c.execution_id, ex.c.input_payload).where(
                ex.c.function_name == function, ex.c.name == name)).first()
            if existing is not None:
                if existing.input_payload == data:
                    return StartResult(existing.arn, existing.execution_id, False)
                raise DurableExecutionAlreadyStartedException(
                    f"Durable execution {name} already exists for function {function} with a different input")
        execution_id = execution_id or str(uuid.uuid4())
        name = name or execution_id
        arn = str(ExecutionArn(self.settings.region, self.settings.account_id, function, "$LATEST", name, execution_id))
        extra: dict[str, Any] = {
            "Arn": arn, "FunctionName": function, "FunctionVersion": "$LATEST", "ExecutionName": name,
            "RetentionDays": spec.retention_days,
        }
        if parent:
            extra["ParentArn"], extra["ParentOpId"] = parent
        started = NewEvent(
            "ExecutionStarted",
            OpIdentity(execution_id, "EXECUTION", name=name),
            {"Input": payload_envelope(data), "ExecutionTimeout": spec.execution_timeout},
            extra,
        )
        state = StateRow(execution_id=execution_id, token=None, token_seq=0, invocation_seq=0, request_id=None,
                         invocation_start_ms=None, lease_owner=None, lease_expires_ms=None, invoke_wanted=False,
                         next_invoke_ms=0, pending_ops_json="[]", updated_ops_json="[]", changed_while_running=False,
                         consecutive_failures=0, invalid_pending=0, last_client_token=None, last_client_inbound=None,
                         last_client_response=None, last_client_ms=None)
        self._append(ws, tx, execution_id, [started], now)
        ws.add_state(state)
        self._want_invoke(state, tx, now)
        return StartResult(arn, execution_id, True)

    # --- checkpoint ------------------------------------------------------------------------

    def checkpoint(self, arn: str, token: Any, raw_updates: Any, client_token: Any = None,
                   ts: Callable[[int], Any] = ts_ms) -> dict[str, Any]:
        execution_id = ExecutionArn.parse(arn).execution_id
        if not isinstance(token, str) or not token:
            raise invalid_token("CheckpointToken is required")
        if client_token is not None and (not isinstance(client_token, str) or not 1 <= len(client_token) <= 64):
            raise InvalidParameterValueException("ClientToken must be a string of 1 to 64 characters")
        updates = parse_updates(raw_updates)
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state, next_op_timer = self._lock(ws, execution_id)
            now = now_ms()
            if (client_token is not None and state.last_client_token == client_token
                    and state.last_client_inbound == token and state.last_client_ms is not None
                    and now - state.last_client_ms < CLIENT_TOKEN_WINDOW_MS and state.last_client_response):
                return _render_ops(json.loads(state.last_client_response), ts)
            if state.token is None or token != state.token or execution.status not in OPEN_STATUSES:
                raise invalid_token()
            response = self._apply_checkpoint(ws, tx, execution, state, updates, now, next_op_timer)
            if client_token is not None:
                state.last_client_token = client_token
                state.last_client_inbound = token
                state.last_client_ms = now
                state.last_client_response = json.dumps(response)
            ws.touch_state(state)
            ws.flush()
        self._emit(tx)
        return _render_ops(response, ts)

    def _apply_checkpoint(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow,
                          updates: list[Update], now: int, next_op_timer: int | None) -> dict[str, Any]:
        eid = execution.execution_id
        wanted = {u.id for u in updates if u.type != "EXECUTION"} | {u.parent_id for u in updates if u.parent_id}
        rows = ws.preload_ops(eid, wanted) if wanted else {}
        sim = {op_id: _Sim(r.type, r.status, r.sub_type, r.name, r.parent_id, r.attempt) for op_id, r in rows.items()}

        # An empty checkpoint is the SDK polling for branches suspended until a time
        # (spec 4.5): it completes the waits and retries due by now. Other checkpoints
        # leave timers to the end of the invocation (see _settle).
        timer_events: list[NewEvent] = []
        timer_ops: list[str] = []
        if not updates and next_op_timer is not None and next_op_timer <= now:
            timer_events, timer_ops = self._due_op_timers(ws, eid, now, sim)
        events, children, closing = self._plan(execution, updates, sim, now)

        body = timer_events + [e for e in events if e is not closing]
        if body:
            self._append(ws, tx, eid, body, now)
        for op_id, fn, data, child_id in children:
            self._start_in(ws, tx, fn, data, _child_name(eid, op_id), now, parent=(execution.arn, op_id),
                           execution_id=child_id)
        if closing is not None:
            self._close(ws, tx, execution, state, closing, now)

        touched = [u.id for u in updates if u.type != "EXECUTION"]
        pending = _loads(state.pending_ops_json, [])
        ops = [op for i in dict.fromkeys(touched + timer_ops + pending) if (op := ws.op(eid, i)) is not None]
        ops.sort(key=lambda o: o.seq)
        response: dict[str, Any] = {"NewExecutionState": {"Operations": [operation_to_wire(o) for o in ops]}}
        state.pending_ops_json = "[]"
        if closing is None and execution.status == "PAUSING":
            # Applied, but answered without a token: the SDK stops and returns PENDING.
            state.token = None
        elif closing is None:
            state.token_seq += 1
            state.token = tokens.new_token(eid, state.invocation_seq, state.token_seq)
            state.lease_expires_ms = now + int(self.settings.lease_seconds * 1000)
            response["CheckpointToken"] = state.token
        return response

    def _due_op_timers(self, ws: Workset, execution_id: str, now: int,
                       sim: dict[str, _Sim]) -> tuple[list[NewEvent], list[str]]:
        due = ws.raw.all("SELECT kind, op_id FROM timers WHERE execution_id = :eid AND kind IN ('wait', 'retry') "
                         "AND due_ms <= :now ORDER BY due_ms", {"eid": execution_id, "now": now})
        events: list[NewEvent] = []
        ids: list[str] = []
        for kind, op_id in due:
            row = ws.op(execution_id, op_id)
            if row is None:
                continue
            ev = _timer_event(kind, row)
            if ev is None:
                continue
            events.append(ev)
            ids.append(row.op_id)
            sim[row.op_id] = _Sim(row.type, "SUCCEEDED" if kind == WAIT else "READY",
                                  row.sub_type, row.name, row.parent_id, row.attempt)
        return events, ids

    def _plan(self, execution: ExecRow, updates: list[Update], sim: dict[str, _Sim],
              now: int) -> tuple[list[NewEvent], list[tuple[str, str, str | None, str]], NewEvent | None]:
        """Validate the whole batch against ``sim`` and decide its events (nothing is written)."""
        events: list[NewEvent] = []
        children: list[tuple[str, str, str | None, str]] = []
        closing: NewEvent | None = None
        exec_idx = [i for i, u in enumerate(updates) if u.type == "EXECUTION"]
        if len(exec_idx) > 1:
            raise InvalidParameterValueException("A checkpoint may carry at most one EXECUTION update")
        if exec_idx and exec_idx[0] != len(updates) - 1:
            raise InvalidParameterValueException("The EXECUTION update must be the last update of the checkpoint")
        seen: dict[str, list[str]] = {}
        for i, u in enumerate(updates):
            where = f"Updates[{i}] ({u.type} {u.action} {u.id})"
            if u.type == "EXECUTION":
                ident = OpIdentity(execution.execution_id, "EXECUTION", name=execution.name)
                if u.action == "SUCCEED":
                    if u.error is not None:
                        raise InvalidParameterValueException(f"{where}: SUCCEED takes no Error")
                    closing = NewEvent("ExecutionSucceeded", ident, {"Result": payload_envelope(u.payload)})
                elif u.action == "FAIL":
                    if u.payload is not None:
                        raise InvalidParameterValueException(f"{where}: FAIL takes no Payload")
                    closing = NewEvent("ExecutionFailed", ident, {"Error": error_envelope(_err(u))})
                else:
                    raise InvalidParameterValueException(f"{where}: EXECUTION takes only SUCCEED or FAIL")
                events.append(closing)
                continue
            before = seen.get(u.id)
            if before is not None and not (u.type in ("STEP", "CONTEXT") and before == ["START"] and u.action != "START"):
                raise InvalidParameterValueException(f"{where}: operation {u.id} appears twice in one checkpoint")
            seen.setdefault(u.id, []).append(u.action)
            cur = sim.get(u.id)
            if cur is not None:
                if cur.type != u.type:
                    raise InvalidParameterValueException(f"{where}: operation is a {cur.type}, not a {u.type}")
                for label, given, stored in (("SubType", u.sub_type, cur.sub_type), ("Name", u.name, cur.name),
                                             ("ParentId", u.parent_id, cur.parent_id)):
                    if given is not None and given != stored:
                        raise InvalidParameterValueException(
                            f"{where}: {label} {given!r} differs from the recorded {stored!r}")
            if u.parent_id is not None:
                parent = sim.get(u.parent_id)
                if parent is None or parent.type != "CONTEXT":
                    raise InvalidParameterValueException(f"{where}: ParentId {u.parent_id} is not a CONTEXT operation")
            ident = OpIdentity(u.id, u.type,
                               cur.sub_type if cur else u.sub_type,
                               cur.name if cur else u.name,
                               cur.parent_id if cur else u.parent_id)
            status = cur.status if cur else None
            attempt = cur.attempt if cur else 0
            new_status, evs = self._plan_one(execution, u, ident, status, attempt, where, now, children)
            events.extend(evs)
            if cur is None:
                sim[u.id] = _Sim(u.type, new_status, ident.sub_type, ident.name, ident.parent_id, 0)
            else:
                cur.status = new_status
            if u.type == "STEP" and u.action in ("SUCCEED", "FAIL", "RETRY"):
                sim[u.id].attempt = attempt + 1
        return events, children, closing

    def _plan_one(self, execution: ExecRow, u: Update, ident: OpIdentity, status: str | None, attempt: int,
                  where: str, now: int, children: list[tuple[str, str, str | None, str]]) -> tuple[str, list[NewEvent]]:
        t, a = u.type, u.action

        def refuse(reason: str) -> InvalidParameterValueException:
            return InvalidParameterValueException(f"{where}: {reason}")

        if t == "STEP":
            if a == "START":
                if status not in (None, "READY"):
                    raise refuse(f"cannot START a step in status {status}")
                return "STARTED", [NewEvent("StepStarted", ident, {})]
            if a == "CANCEL":
                raise refuse("steps cannot be cancelled")
            if status not in (None, "STARTED", "READY"):
                raise refuse(f"cannot {a} a step in status {status}")
            if a == "RETRY":
                if u.next_attempt_delay is None:
                    raise refuse("RETRY needs StepOptions.NextAttemptDelaySeconds")
                if u.error is not None and u.payload is not None:
                    raise refuse("RETRY takes Error or Payload, not both")
                retry = {"CurrentAttempt": attempt + 1, "NextAttemptDelaySeconds": u.next_attempt_delay}
                if u.error is not None:
                    return "PENDING", [NewEvent("StepFailed", ident, {"Error": error_envelope(_err(u)), "RetryDetails": retry})]
                return "PENDING", [NewEvent("StepSucceeded", ident, {"Result": payload_envelope(u.payload), "RetryDetails": retry})]
            if a == "SUCCEED":
                if u.error is not None:
                    raise refuse("SUCCEED takes no Error")
                return "SUCCEEDED", [NewEvent("StepSucceeded", ident, {"Result": payload_envelope(u.payload),
                                                                        "RetryDetails": {"CurrentAttempt": attempt + 1}})]
            if u.payload is not None:
                raise refuse("FAIL takes no Payload")
            return "FAILED", [NewEvent("StepFailed", ident, {"Error": error_envelope(_err(u)),
                                                              "RetryDetails": {"CurrentAttempt": attempt + 1}})]
        if t == "CONTEXT":
            if a == "START":
                if status is not None:
                    raise refuse("the context already exists")
                return "STARTED", [NewEvent("ContextStarted", ident, {})]
            if a not in ("SUCCEED", "FAIL"):
                raise refuse(f"contexts take START, SUCCEED or FAIL, not {a}")
            if status not in (None, "STARTED"):
                raise refuse(f"cannot {a} a context in status {status}")
            if a == "SUCCEED":
                if u.error is not None:
                    raise refuse("SUCCEED takes no Error")
                extra = {"ReplayChildren": True} if u.replay_children else None
                return "SUCCEEDED", [NewEvent("ContextSucceeded", ident, {"Result": payload_envelope(u.payload)}, extra)]
            if u.payload is not None:
                raise refuse("FAIL takes no Payload")
            return "FAILED", [NewEvent("ContextFailed", ident, {"Error": error_envelope(_err(u))})]
        if t == "WAIT":
            if a == "START":
                if status is not None:
                    raise refuse("the wait already exists")
                if u.wait_seconds is None:
                    raise refuse("WAIT START needs WaitOptions.WaitSeconds")
                return "STARTED", [NewEvent("WaitStarted", ident, {
                    "Duration": u.wait_seconds, "ScheduledEndTimestamp": now + u.wait_seconds * 1000})]
            if a == "CANCEL":
                if status != "STARTED":
                    raise refuse(f"cannot CANCEL a wait in status {status or 'absent'}")
                details = {"Error": error_envelope(_err(u))} if u.error is not None else {}
                return "CANCELLED", [NewEvent("WaitCancelled", ident, details)]
            raise refuse(f"waits take START or CANCEL, not {a}")
        if t == "CALLBACK":
            if a != "START":
                raise refuse(f"callbacks take only START, not {a}")
            if status is not None:
                raise refuse("the callback already exists")
            details: dict[str, Any] = {"CallbackId": tokens.new_callback_id(execution.execution_id, u.id)}
            if u.callback_timeout:
                details["Timeout"] = u.callback_timeout
            if u.callback_heartbeat:
                details["HeartbeatTimeout"] = u.callback_heartbeat
            return "STARTED", [NewEvent("CallbackStarted", ident, details)]
        if t == "CHAINED_INVOKE":
            if a != "START":
                raise refuse(f"chained invokes take only START, not {a}")
            if status is not None:
                raise refuse("the chained invoke already exists")
            if not u.has_invoke_options or not u.invoke_function:
                raise refuse("CHAINED_INVOKE START needs ChainedInvokeOptions.FunctionName")
            if u.payload is not None and len(u.payload.encode("utf-8")) > MAX_PAYLOAD:
                raise refuse("the chained invoke payload is larger than 1 MiB")
            details = {"FunctionName": u.invoke_function}
            if u.invoke_tenant:
                details["TenantId"] = u.invoke_tenant
            target = self._resolve_target(u.invoke_function)
            if target is None:
                error = {"ErrorType": "ResourceNotFoundException",
                         "ErrorMessage": f"Function not found: {u.invoke_function}"}
                return "FAILED", [NewEvent("ChainedInvokeStarted", ident, details),
                                  NewEvent("ChainedInvokeFailed", ident, {"Error": error_envelope(error)})]
            child_id = str(uuid.uuid4())
            child_arn = ExecutionArn(self.settings.region, self.settings.account_id, target, "$LATEST",
                                     _child_name(execution.execution_id, u.id), child_id)
            details["Input"] = payload_envelope(u.payload)
            details["ExecutedVersion"] = "$LATEST"
            details["DurableExecutionArn"] = str(child_arn)
            children.append((u.id, target, normalize_input(u.payload), child_id))
            return "STARTED", [NewEvent("ChainedInvokeStarted", ident, details)]
        raise refuse(f"unknown operation type {t}")

    def _resolve_target(self, text: str) -> str | None:
        try:
            ref = parse_function_name(text)
        except (ResourceNotFoundException, InvalidParameterValueException):
            return None
        if ref.qualifier not in (None, "$LATEST"):
            return None
        return ref.name if self.get_function(ref.name) is not None else None

    # --- state reads for the SDK -----------------------------------------------------------

    def get_state(self, arn: str, token: Any, marker: Any = None, max_items: Any = None,
                  ts: Callable[[int], Any] = ts_ms) -> dict[str, Any]:
        execution_id = ExecutionArn.parse(arn).execution_id
        if not isinstance(token, str) or not token:
            raise invalid_token("CheckpointToken is required")
        limit = _max_items(max_items, 100, 1000)
        with self.db.read() as s:
            state = s.get(EngineState, execution_id)
            known = s.get(Execution, execution_id)
            if state is None or known is None or known.arn != arn:
                raise ResourceNotFoundException(f"Durable execution not found: {arn}")
            if state.token is None or token != state.token:
                raise invalid_token()
            start = tokens.parse_state_marker(marker, token) if marker else 0
            ops, next_seq = _navigable_page(Raw(s.connection()), execution_id, start, limit)
        out: dict[str, Any] = {"Operations": [_render_op(o, ts) for o in ops]}
        if next_seq is not None:
            out["NextMarker"] = tokens.state_marker(token, next_seq)
        return out

    # --- invocations -----------------------------------------------------------------------

    def begin_invocation(self, execution_id: str, owner: str) -> InvocationInput | None:
        """Claim an owed invocation; None when there is nothing to run (or another engine runs it)."""
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            got = ws.lock(execution_id, skip_locked=True)
            if got is None:
                return None  # being claimed or changed by another transaction right now
            execution, state, _ = got
            self._lock_parent(ws, execution)
            now = now_ms()
            if execution.status in ("PAUSING", "PAUSED") and state.request_id is None:
                return None  # no new invocations while paused; resume re-arms them
            if execution.status not in OPEN_STATUSES:
                if state.invoke_wanted:
                    state.invoke_wanted = False
                    ws.touch_state(state)
                    ws.flush()
                return None
            if state.request_id is not None:
                if (state.lease_expires_ms or 0) > now:
                    return None  # an invocation (ours or another engine's) is alive
                self._record_lost_invocation(ws, tx, execution, state, now)
                ws.flush()
                if execution.status != "RUNNING":
                    return None
            if not state.invoke_wanted or state.next_invoke_ms > now:
                return None
            spec = self.get_function(execution.function_name, conn)
            if spec is None:
                self._close(ws, tx, execution, state, NewEvent("ExecutionFailed", _exec_ident(execution), {
                    "Error": error_envelope({"ErrorType": "ResourceNotFoundException",
                                             "ErrorMessage": f"Function not found: {execution.function_name}"})}), now)
                ws.flush()
                return None
            inv = self._claim(ws, tx, execution, state, spec, owner, now)
        self._emit(tx)
        return inv

    def _claim(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow, spec: FunctionSpec, owner: str,
               now: int) -> InvocationInput:
        """Start an invocation of an execution that owes one, leased to ``owner``."""
        execution_id = execution.execution_id
        request_id = str(uuid.uuid4())
        state.invocation_seq += 1
        state.token_seq += 1
        token = tokens.new_token(execution_id, state.invocation_seq, state.token_seq)
        state.token = token
        state.request_id = request_id
        state.invocation_start_ms = now
        state.lease_owner = owner
        state.lease_expires_ms = now + int(self.settings.lease_seconds * 1000)
        state.invoke_wanted = False
        state.changed_while_running = False
        updated = _loads(state.updated_ops_json, [])
        state.updated_ops_json = "[]"
        state.pending_ops_json = "[]"
        ws.touch_state(state)
        if execution_id in tx.invoke:
            # Wanted and claimed in this transaction: neither the wish nor its due time
            # (``_want_invoke``) is news for any engine.
            tx.invoke.discard(execution_id)
            if state.next_invoke_ms in tx.timer_dues:
                tx.timer_dues.remove(state.next_invoke_ms)
        self._append(ws, tx, execution_id, [NewEvent(INVOCATION_STARTED, None, {
            "RequestId": request_id, "StartTimestamp": now, "Engine": owner})], now)
        ws.flush()
        ops, next_seq = _navigable_page(ws.raw, execution_id, 0, 1000, STATE_PAGE_BYTES)
        return InvocationInput(
            execution_id=execution_id, arn=execution.arn, request_id=request_id, token=token,
            operations=ops, next_marker=tokens.state_marker(token, next_seq) if next_seq is not None else "",
            updated_operation_ids=updated, function=spec, start_ms=now,
        )

    def _record_lost_invocation(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow, now: int) -> None:
        """An invocation whose engine died (lease expired): record it as failed."""
        error = {"ErrorType": "Runtime.ExitError",
                 "ErrorMessage": "The invocation was lost: its engine stopped before it returned"}
        self._finish(ws, tx, execution, state, state.request_id or "", state.invocation_start_ms or now,
                     InvocationOutcome("ERROR", error=error), now)

    def renew_lease(self, execution_id: str, request_id: str, owner: str) -> bool:
        table = EngineState.__table__
        with self.db.write() as conn:
            done = conn.execute(update(table).where(table.c.execution_id == execution_id,
                                                    table.c.request_id == request_id)
                                .values(lease_owner=owner,
                                        lease_expires_ms=now_ms() + int(self.settings.lease_seconds * 1000)))
            return bool(done.rowcount)

    def end_invocation(self, inv: InvocationInput, outcome: InvocationOutcome) -> bool:
        """Record the invocation's end. True when the execution wants another invocation now
        (the caller may run it at once instead of waiting for the dispatcher)."""
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state, _ = self._lock(ws, inv.execution_id)
            now = now_ms()
            if state.request_id != inv.request_id:
                # Superseded (its lease expired and another invocation took over): the
                # invocation still happened, so it is still recorded.
                self._append(ws, tx, inv.execution_id,
                             [_invocation_completed(inv.request_id, inv.start_ms, now, outcome)], now)
                ws.flush()
                return False
            self._finish(ws, tx, execution, state, inv.request_id, inv.start_ms, outcome, now)
            ws.flush()
        again = inv.execution_id in tx.invoke and state.next_invoke_ms <= now
        tx.invoke.discard(inv.execution_id) if again else None
        self._emit(tx)
        return again

    def _finish(self, ws: Workset, tx: _Tx, execution: ExecRow, state: StateRow, request_id: str,
                start_ms: int, outcome: InvocationOutcome, now: int) -> None:
        eid = execution.execution_id
        self._append(ws, tx, eid, [_invocation_completed(request_id, start_ms, now, outcome)], now)
        state.request_id = None
        state.lease_owner = None
        state.lease_expires_ms = None
        state.token = None
        changed = state.changed_while_running or bool(_loads(state.pending_ops_json, []))
        state.changed_while_running = False
        ws.touch_state(state)
        if execution.status not in OPEN_STATUSES:
            return  # closed by a checkpoint, a stop or a timeout: the output is ignored
        if outcome.status in ("PENDING", "ERROR"):
            self._settle(ws, tx, execution, state, now)
            changed = changed or state.invoke_wanted
        ident = _exec_ident(execution)
        st = outcome.status
        if st == "SUCCEEDED" and not outcome.has_error:
            state.consecutive_failures = 0
            self._close(ws, tx, execution, state, NewEvent("ExecutionSucceeded", ident,
                                                           {"Result": payload_envelope(outcome.result)}), now)
        elif st == "FAILED" and not outcome.has_result:
            state.consecutive_failures = 0
            self._close(ws, tx, execution, state, NewEvent("ExecutionFailed", ident,
                                                           {"Error": error_envelope(outcome.error)}), now)
        elif st in ("SUCCEEDED", "FAILED", "INVALID"):
            error = outcome.error if st == "INVALID" else {
                "ErrorType": "InvalidParameterValueException",
                "ErrorMessage": f"Invalid handler output: {st} with {'Error' if st == 'SUCCEEDED' else 'Result'}"}
            self._close(ws, tx, execution, state, NewEvent("ExecutionFailed", ident, {"Error": error_envelope(error)}), now)
        elif st in ("PENDING", "ERROR") and execution.status == "PAUSING":
            # The pause waited for this invocation; it takes effect now. Resume
            # invokes again (the pause may have cut the invocation short).
            state.consecutive_failures = 0
            state.invoke_wanted = True
            self._append(ws, tx, eid, [self._paused_event(ws, execution)], now)
        elif st == "PENDING":
            state.consecutive_failures = 0
            if changed:
                state.invalid_pending = 0
                self._want_invoke(state, tx, now)
            elif self._has_backend_wait(ws, eid):
                state.invalid_pending = 0
            else:
                state.invalid_pending += 1
                if state.invalid_pending > MAX_INVALID_PENDING:
                    self._close(ws, tx, execution, state, NewEvent("ExecutionFailed", ident, {"Error": error_envelope({
                        "ErrorType": "InvalidParameterValueException",
                        "ErrorMessage": "The handler returned PENDING but nothing is waiting on the backend"})}), now)
                else:
                    self._want_invoke(state, tx, now)
        else:  # ERROR: the invocation itself failed; Lambda retries it
            state.consecutive_failures += 1
            if state.consecutive_failures >= self.settings.max_invocation_attempts:
                self._close(ws, tx, execution, state, NewEvent("ExecutionFailed", ident,
                                                               {"Error": error_envelope(outcome.error)}), now)
            else:
                delay = int(self.settings.invocation_retry_seconds * 1000 * state.consecutive_failures)
                self._want_invoke(state, tx, now + delay)

    @staticmethod
    def _has_backend_wait(ws: Workset, execution_id: str) -> bool:
        ws.flush()
        row = ws.raw.one(
            "SELECT op_id FROM operations WHERE execution_id = :eid AND ("
            "(type = 'STEP' AND status IN ('PENDING', 'READY')) OR "
            "(type IN ('WAIT', 'CALLBACK', 'CHAINED_INVOKE') AND status = 'STARTED')) LIMIT 1", {"eid": execution_id})
        return row is not None

    # --- timers ----------------------------------------------------------------------------

    def due_timers(self, now: int | None = None, limit: int = 500) -> list[tuple[str, str, str]]:
        """Timers the engine should fire now. Op timers of an execution whose invocation
        is running wait for it to end (``_settle``); its timeout and purge do not."""
        now = now if now is not None else now_ms()
        with self.db.read() as s:
            rows = Raw(s.connection()).all(
                "SELECT t.execution_id, t.kind, t.op_id FROM timers t "
                "LEFT JOIN engine_state s ON s.execution_id = t.execution_id "
                "WHERE t.due_ms <= :now AND (s.request_id IS NULL OR t.kind IN ('execution-timeout', 'purge')) "
                "ORDER BY t.due_ms LIMIT :lim", {"now": now, "lim": limit})
        return [(r[0], r[1], r[2]) for r in rows]

    def next_timer_due(self) -> int | None:
        with self.db.read() as s:
            row = Raw(s.connection()).one(
                "SELECT MIN(t.due_ms) FROM timers t LEFT JOIN engine_state s ON s.execution_id = t.execution_id "
                "WHERE s.request_id IS NULL OR t.kind IN ('execution-timeout', 'purge')")
            return row[0] if row else None

    def fire_timer(self, execution_id: str, kind: str, op_id: str) -> None:
        tx = _Tx()
        with self.db.write() as conn:
            now = now_ms()
            raw = Raw(conn)
            # Claim the timer: on PostgreSQL an engine that sees it locked leaves it to
            # the engine holding it (exactly one fires it).
            row = raw.one("SELECT due_ms FROM timers WHERE execution_id = :eid AND kind = :kind AND op_id = :op"
                          + (" FOR UPDATE SKIP LOCKED" if raw.postgres else ""),
                          {"eid": execution_id, "kind": kind, "op": op_id})
            if row is None or row[0] > now:
                return
            if kind == PURGE:
                purge_execution(conn, execution_id)
                return
            ws = Workset(conn)
            execution, state, _ = self._lock(ws, execution_id)
            if execution.status not in OPEN_STATUSES:
                ws.clear_timer(execution_id, kind, op_id)
            elif kind == EXECUTION_TIMEOUT:
                self._close(ws, tx, execution, state, NewEvent("ExecutionTimedOut", _exec_ident(execution), {
                    "Error": error_envelope({"ErrorMessage": f"Execution timed out after {execution.execution_timeout} seconds."})}), now)
            elif state.request_id is not None:
                return  # an invocation is running: _settle records it when it ends
            else:
                row = ws.op(execution_id, op_id)
                ev = _timer_event(kind, row) if row is not None else None
                if ev is None:
                    ws.clear_timer(execution_id, kind, op_id)
                else:
                    self._append(ws, tx, execution_id, [ev], now)
                    self._mark_changed(ws, state, tx, [op_id], now)
            ws.flush()
        self._emit(tx)

    # --- callbacks -------------------------------------------------------------------------

    def _callback_target(self, callback_id: Any) -> tuple[str, str]:
        if not isinstance(callback_id, str) or not 1 <= len(callback_id) <= 1024:
            raise InvalidParameterValueException("CallbackId must be a string of 1 to 1024 characters")
        with self.db.read() as s:
            cb = s.get(Callback, callback_id)
            if cb is None:
                raise ResourceNotFoundException(f"Callback not found: {callback_id}")
            return cb.execution_id, cb.op_id

    def callback_heartbeat(self, callback_id: str) -> None:
        execution_id, op_id = self._callback_target(callback_id)
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, _state, _ = self._lock(ws, execution_id)
            cb = ws.callback(callback_id)
            if cb is None or cb.status != "STARTED" or execution.status not in OPEN_STATUSES:
                raise CallbackTimeoutException(f"Callback {callback_id} is already closed")
            self._append(ws, tx, execution_id,
                         [NewEvent(CALLBACK_HEARTBEAT, OpIdentity(op_id, "CALLBACK"), {"CallbackId": callback_id})], now_ms())
            ws.flush()
        self._emit(tx)

    def callback_complete(self, callback_id: str, success: bool, result: bytes | None = None,
                          error: ErrorObject | None = None) -> None:
        execution_id, op_id = self._callback_target(callback_id)
        payload: str | None = None
        if success and result:
            if len(result) > MAX_PAYLOAD:
                raise RequestTooLargeException("Callback result is larger than 1 MiB")
            try:
                payload = result.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidParameterValueException("Callback result must be UTF-8 text") from exc
            refuse_nul(payload, "Result")
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state, _ = self._lock(ws, execution_id)
            cb = ws.callback(callback_id)
            op = ws.op(execution_id, op_id)
            if cb is None or op is None or cb.status != "STARTED" or execution.status not in OPEN_STATUSES:
                raise CallbackTimeoutException(f"Callback {callback_id} is already closed")
            now = now_ms()
            details: dict[str, Any] = {"CallbackId": callback_id, "Success": success}
            if success:
                details["Result"] = payload_envelope(payload)
            else:
                details["Error"] = error_envelope(error.to_dict() if error else {})
            if state.request_id is not None:
                # The running invocation cannot observe it; _settle records it after it ends.
                self._append(ws, tx, execution_id, [NewEvent(CALLBACK_RECEIVED, OpIdentity(op_id, "CALLBACK"), details)], now)
            else:
                self._append(ws, tx, execution_id, [_callback_outcome(op, details)], now)
                self._mark_changed(ws, state, tx, [op_id], now)
            ws.flush()
        self._emit(tx)

    # --- stop ------------------------------------------------------------------------------

    def stop_execution(self, arn: str, error: ErrorObject | None = None) -> int:
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state = self._locked_by_arn(ws, arn)
            if execution.status not in OPEN_STATUSES:
                return execution.end_ms or execution.last_ts_ms
            now = now_ms()
            err = error.to_dict() if error else {"ErrorMessage": "Execution stopped by user request"}
            self._close(ws, tx, execution, state, NewEvent("ExecutionStopped", _exec_ident(execution),
                                                           {"Error": error_envelope(err)}), now)
            ws.flush()
            end = execution.end_ms or now
        self._emit(tx)
        return end

    # --- pause, resume, delete ------------------------------------------------------

    def _locked_by_arn(self, ws: Workset, arn: str) -> tuple[ExecRow, StateRow]:
        execution, state, _ = self._lock(ws, ExecutionArn.parse(arn).execution_id)
        if execution.arn != arn:
            raise ResourceNotFoundException(f"Durable execution not found: {arn}")
        return execution, state

    @staticmethod
    def _pause_details(ws: Workset, execution: ExecRow) -> dict[str, Any]:
        op = ws.op(execution.execution_id, execution.execution_id)
        return (_loads(op.details_json, {}) if op else {}).get("Pause", {})

    def _paused_event(self, ws: Workset, execution: ExecRow) -> NewEvent:
        return NewEvent("ExecutionPaused", _exec_ident(execution), self._pause_details(ws, execution))

    def pause_execution(self, arn: str, reason: str | None = None, timeout_paused: bool | None = None) -> None:
        """PauseDurableExecution. Choices (spec 10.13, unconfirmed): pausing a paused or
        pausing execution changes nothing; pausing a closed one is a ResourceConflictException."""
        _check_reason(reason)
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state = self._locked_by_arn(ws, arn)
            if execution.status in ("PAUSING", "PAUSED"):
                return
            if execution.status != "RUNNING":
                raise ResourceConflictException(f"Durable execution is {execution.status}; only running executions pause")
            now = now_ms()
            details: dict[str, Any] = {"PauseRequestTimestamp": now, "Reason": payload_envelope(reason),
                                       "ExecutionTimeoutPaused": True if timeout_paused is None else bool(timeout_paused)}
            if state.request_id is not None:
                self._append(ws, tx, execution.execution_id, [NewEvent(PAUSE_REQUESTED, None, details)], now)
            else:
                self._append(ws, tx, execution.execution_id,
                             [NewEvent("ExecutionPaused", _exec_ident(execution), details)], now)
            ws.flush()
        self._emit(tx)

    def resume_execution(self, arn: str, reason: str | None = None) -> None:
        """ResumeDurableExecution. Resuming a PAUSING execution cancels the pause (an
        engine record, since no ExecutionPaused was written); resuming a running one is a
        ResourceConflictException (unconfirmed)."""
        _check_reason(reason)
        tx = _Tx()
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, state = self._locked_by_arn(ws, arn)
            now = now_ms()
            if execution.status == "PAUSING":
                self._append(ws, tx, execution.execution_id, [NewEvent(PAUSE_CANCELLED, None, {})], now)
            elif execution.status == "PAUSED":
                self._append(ws, tx, execution.execution_id, [NewEvent("ExecutionResumed", _exec_ident(execution), {
                    "ResumeRequestTimestamp": now, "Reason": payload_envelope(reason)})], now)
                if state.invoke_wanted or _loads(state.updated_ops_json, []):
                    self._want_invoke(state, tx, now)
                    ws.touch_state(state)
            else:
                raise ResourceConflictException(f"Durable execution is {execution.status}, not paused")
            ws.flush()
        self._emit(tx)

    def delete_execution(self, arn: str) -> int:
        """DeleteDurableExecution: a closed execution leaves the store through the purge path."""
        with self.db.write() as conn:
            ws = Workset(conn)
            execution, _ = self._locked_by_arn(ws, arn)
            if execution.status in OPEN_STATUSES:
                raise ResourceConflictException(f"Durable execution is {execution.status}; stop it before deleting it")
            purge_execution(conn, execution.execution_id)
        return now_ms()

    # --- captured logs -----------------------------------------------------------------

    def store_logs(self, execution_id: str, request_id: str, lines: Iterable[Any]) -> None:
        rows = [{"execution_id": execution_id, "request_id": request_id, "op_id": ln.op_id, "ts_ms": ln.ts_ms,
                 "level": ln.level, "logger": ln.logger, "message": ln.message,
                 "replay": getattr(ln, "replay", False), "attempt": getattr(ln, "attempt", None)} for ln in lines]
        if rows:
            with self.db.write() as conn:
                conn.execute(insert(LogLine), rows)

    # --- owed work after a restart -----------------------------------------------------

    def owed_invocations(self, limit: int = 10_000) -> list[tuple[str, int]]:
        """Executions that want an invocation or whose in-flight invocation may be lost."""
        with self.db.read() as s:
            rows = s.execute(
                select(EngineState.execution_id, EngineState.next_invoke_ms, EngineState.lease_expires_ms)
                .join(Execution, Execution.execution_id == EngineState.execution_id)
                .where(Execution.status.in_(OPEN_STATUSES),
                       (EngineState.invoke_wanted.is_(True)) | (EngineState.request_id.is_not(None)))
                .limit(limit)).all()
        return [(r[0], max(r[1] or 0, r[2] or 0) if r[2] else (r[1] or 0)) for r in rows]


# --- helpers -------------------------------------------------------------------------


def _callback_outcome(op: OpRow, details: dict[str, Any]) -> NewEvent:
    if details["Success"]:
        return NewEvent("CallbackSucceeded", _identity(op), {"Result": details["Result"]})
    return NewEvent("CallbackFailed", _identity(op), {"Error": details["Error"]})


def _check_reason(reason: Any) -> None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1024):
        raise InvalidParameterValueException("Reason must be a string of at most 1024 characters")


def _chained_outcome(op: OpRow, child: ExecRow) -> NewEvent:
    ident = _identity(op)
    error = _loads(child.error_json, None)
    if child.status == "SUCCEEDED":
        return NewEvent("ChainedInvokeSucceeded", ident, {"Result": payload_envelope(child.result)})
    if child.status == "FAILED":
        return NewEvent("ChainedInvokeFailed", ident, {"Error": error_envelope(error)})
    if child.status == "TIMED_OUT":
        return NewEvent("ChainedInvokeTimedOut", ident, {"Error": error_envelope(
            error or {"ErrorType": "ChainedInvoke.Timeout", "ErrorMessage": "Chained execution timed out"})})
    return NewEvent("ChainedInvokeStopped", ident, {"Error": error_envelope(error)})


def _child_name(execution_id: str, op_id: str) -> str:
    # Deterministic, so a replayed START can never start a second child.
    return "chained-" + hashlib.sha256(f"{execution_id}/{op_id}".encode()).hexdigest()[:40]


def _err(u: Update) -> dict[str, Any] | None:
    return u.error.to_dict() if u.error is not None else None


def _identity(op: OpRow) -> OpIdentity:
    return OpIdentity(op.op_id, op.type, op.sub_type, op.name, op.parent_id)


def _exec_ident(execution: ExecRow) -> OpIdentity:
    return OpIdentity(execution.execution_id, "EXECUTION", name=execution.name)


def _timer_event(kind: str, row: OpRow) -> NewEvent | None:
    ident = _identity(row)
    if kind == WAIT and row.status == "STARTED":
        details = _loads(row.details_json, {})
        return NewEvent("WaitSucceeded", ident, {"Duration": details.get("Duration")})
    if kind == RETRY and row.status == "PENDING":
        return NewEvent(STEP_READY, ident, {})
    if kind in (CALLBACK_TIMEOUT, CALLBACK_HEARTBEAT_TIMEOUT) and row.status == "STARTED":
        error = ({"ErrorType": "Callback.Timeout", "ErrorMessage": "Callback timed out"} if kind == CALLBACK_TIMEOUT
                 else {"ErrorType": "Callback.Heartbeat", "ErrorMessage": "Callback timed out on heartbeat"})
        return NewEvent("CallbackTimedOut", ident, {"Error": error_envelope(error)})
    return None


def _invocation_completed(request_id: str, start_ms: int, end_ms: int, outcome: InvocationOutcome) -> NewEvent:
    details: dict[str, Any] = {"StartTimestamp": start_ms, "EndTimestamp": end_ms, "RequestId": request_id}
    if outcome.status in ("ERROR",):
        details["Error"] = error_envelope(outcome.error)
    return NewEvent("InvocationCompleted", None, details)


def _max_items(value: Any, default: int, cap: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValueException("MaxItems must be a whole number") from exc
    if n < 1:
        raise InvalidParameterValueException("MaxItems must be at least 1")
    return min(n, cap)


def _navigable_page(raw: Raw, execution_id: str, start_seq: int, limit: int,
                    max_bytes: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Ops in first-START order from ``start_seq``, without the children of closed
    contexts that do not replay them (spec 4.4). Returns (page, next seq or None)."""
    rows = [OpRow(*r) for r in raw.all(f"SELECT {', '.join(OP_COLS)} FROM operations WHERE execution_id = :eid "
                                       "ORDER BY seq", {"eid": execution_id})]
    by_id = {r.op_id: r for r in rows}
    hidden: dict[str, bool] = {}

    def is_hidden(op: Any) -> bool:
        parent_id = op.parent_id
        if not parent_id:
            return False
        if parent_id in hidden:
            return hidden[parent_id]
        parent = by_id.get(parent_id)
        result = False
        if parent is not None:
            closed_prunes = parent.type == "CONTEXT" and parent.status in TERMINAL_OP and not parent.replay_children
            result = closed_prunes or is_hidden(parent)
        hidden[parent_id] = result
        return result

    page: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        if row.seq < start_seq or is_hidden(row):
            continue
        if len(page) >= limit:
            return page, row.seq
        wire = operation_to_wire(row)
        if max_bytes is not None:
            size += len(json.dumps(wire))
            if page and size > max_bytes:
                return page, row.seq
        page.append(wire)
    return page, None


_TS_FIELDS = ("StartTimestamp", "EndTimestamp")
_STEP_TS = "NextAttemptTimestamp"
_WAIT_TS = "ScheduledEndTimestamp"


def _render_op(op: dict[str, Any], ts: Callable[[int], Any]) -> dict[str, Any]:
    if ts is ts_ms:
        return op
    out = dict(op)
    for key in _TS_FIELDS:
        if key in out:
            out[key] = ts(out[key])
    if "StepDetails" in out and _STEP_TS in out["StepDetails"]:
        out["StepDetails"] = {**out["StepDetails"], _STEP_TS: ts(out["StepDetails"][_STEP_TS])}
    if "WaitDetails" in out and _WAIT_TS in out["WaitDetails"]:
        out["WaitDetails"] = {**out["WaitDetails"], _WAIT_TS: ts(out["WaitDetails"][_WAIT_TS])}
    return out


def _render_ops(response: dict[str, Any], ts: Callable[[int], Any]) -> dict[str, Any]:
    state = response["NewExecutionState"]
    out = dict(response)
    out["NewExecutionState"] = {**state, "Operations": [_render_op(o, ts) for o in state["Operations"]]}
    return out
