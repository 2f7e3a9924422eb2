"""The one write transaction every state change of an execution goes through.

``transaction(core)`` opens a write transaction with a ``Workset``, hands out a ``Tx``
(the shared pieces: lock, append and project, want an invocation, close), and on the
way out flushes the workset, commits and then, always, tells the listeners what the
commit owes them. An early ``return`` inside the block commits and notifies like any
other exit; an exception rolls back and notifies nothing.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from recorder.arns import ExecutionArn
from recorder.config import Settings
from recorder.engine.boundary import StartClaimer, loads
from recorder.engine.functions import FunctionRegistry
from recorder.engine.notify import Notifier, Owed
from recorder.engine.operations import chained_invoke
from recorder.errors import ResourceNotFoundException
from recorder.store.db import Database
from recorder.store.events import NewEvent, StoredEvent
from recorder.store.log import append
from recorder.store.projector import Projector
from recorder.store.vocabulary import OPEN_EXECUTION, EventType, OperationStatus
from recorder.store.workset import ExecRow, StateRow, Workset


class Core:
    """What every concern of the control plane shares: the database, the settings, this
    process's name, the function registry and the post-commit notifier."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # Names this process in notifications, so it can ignore its own.
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.notifier = Notifier(db, self.owner)
        self.functions = FunctionRegistry(db, settings)
        # Set by a local engine: a started execution's first invocation is claimed in the
        # starting transaction instead of in a second one on an engine thread. That was a
        # write transaction (and a thread hand-off) per execution: ~0.4 ms of the engine's
        # ~3.5 ms an execution in bench/'s W4.
        self.start_claimer: StartClaimer | None = None

    def lease_end(self, now: int) -> int:
        return now + int(self.settings.lease_seconds * 1000)


class Tx:
    """One open write transaction: its workset and what it will owe after commit."""

    def __init__(self, core: Core, conn: Connection) -> None:
        self.core = core
        self.conn = conn
        self.ws = Workset(conn)
        self.owed = Owed()
        self.committed = False

    # --- locking -----------------------------------------------------------------------

    def lock(self, execution_id: str) -> tuple[ExecRow, StateRow, int | None]:
        got = self.ws.lock(execution_id)
        if got is None:
            raise ResourceNotFoundException(f"Durable execution not found: {execution_id}")
        self.lock_parent(got[0])
        return got

    def lock_by_arn(self, arn: str) -> tuple[ExecRow, StateRow]:
        execution, state, _ = self.lock(ExecutionArn.parse(arn).execution_id)
        if execution.arn != arn:
            raise ResourceNotFoundException(f"Durable execution not found: {arn}")
        return execution, state

    def lock_parent(self, execution: ExecRow) -> None:
        """A chained child's transaction may close it and then complete its parent's op
        (``complete_parent``), which locks the parent's row. By then the child's events are
        appended, and on PostgreSQL an append holds the one append lock until commit while
        the parent's own transactions take the parent's row first and the append lock
        second: a deadlock, which PostgreSQL breaks after a second by failing one of them
        (seen as a failed checkpoint in the conformance suite under load). So the parent's
        row is locked up front, before anything is appended: row locks, child before
        parent, then the append lock, in every transaction."""
        if execution.parent_arn and execution.parent_op_id:
            self.ws.lock(ExecutionArn.parse(execution.parent_arn).execution_id)

    # --- events ------------------------------------------------------------------------

    def append(self, execution_id: str, events: list[NewEvent], now: int) -> list[StoredEvent]:
        ws = self.ws
        stored = append(
            ws,
            execution_id,
            ws.execution(execution_id) if events[0].event_type != EventType.EXECUTION_STARTED else None,
            events,
            now,
        )
        projector = Projector(ws)
        for ev in stored:
            projector.apply(ev)
        self.owed.timer_dues.extend(ws.timer_dues)
        ws.timer_dues.clear()
        return stored

    def mark_changed(self, state: StateRow, op_ids: Iterable[str], now: int) -> None:
        """An op changed behind the handler's back: deliver it, and invoke if idle."""
        ids = list(op_ids)
        updated = loads(state.updated_ops_json, [])
        updated.extend(i for i in ids if i not in updated)
        state.updated_ops_json = json.dumps(updated)
        if state.request_id is not None:
            pending = loads(state.pending_ops_json, [])
            pending.extend(i for i in ids if i not in pending)
            state.pending_ops_json = json.dumps(pending)
            state.changed_while_running = True
        else:
            self.want_invoke(state, now)
        self.ws.touch_state(state)

    def want_invoke(self, state: StateRow, at_ms: int) -> None:
        state.invoke_wanted = True
        state.next_invoke_ms = at_ms
        self.owed.invoke.add(state.execution_id)
        self.owed.timer_dues.append(at_ms)

    def close(self, execution: ExecRow, state: StateRow, event: NewEvent, now: int) -> None:
        """Append a terminal execution event, revoke tokens, tell a parent execution."""
        self.append(execution.execution_id, [event], now)
        self.owed.closed.append(execution.arn)
        state.token = None
        state.invoke_wanted = False
        state.pending_ops_json = "[]"
        self.ws.touch_state(state)
        if execution.parent_arn and execution.parent_op_id:
            self.complete_parent(execution, now)

    def complete_parent(self, child: ExecRow, now: int) -> None:
        ws = self.ws
        parent_id = ExecutionArn.parse(child.parent_arn or "").execution_id
        got = ws.lock(parent_id)
        if got is None:
            return
        parent, pstate, _ = got
        op = ws.op(parent_id, child.parent_op_id or "")
        if parent.status not in OPEN_EXECUTION or op is None or op.status != OperationStatus.STARTED:
            return
        if pstate.request_id is not None:
            return  # settled when the parent's running invocation ends (timers.settle)
        self.append(parent_id, [chained_invoke.outcome(op, child)], now)
        self.mark_changed(pstate, [op.op_id], now)


@contextmanager
def transaction(core: Core, then: Callable[[], None] | None = None) -> Iterator[Tx]:
    """Write, commit, then notify. ``then`` runs after the notification even if a
    listener fails (a committed claim must run whatever else happens)."""
    with core.db.write() as conn:
        tx = Tx(core, conn)
        yield tx
        if tx.ws.dirty:
            tx.ws.flush()
    tx.committed = True
    try:
        core.notifier.emit(tx.owed)
    finally:
        if then is not None:
            then()
