"""The control plane: every state change of an execution goes through here.

``ControlPlane`` is a facade over one module per concern:

* ``transaction``: the one write transaction (lock, append and project, commit, then
  notify the listeners: ``notify``) every change below goes through;
* ``functions``: the function registry;
* ``lifecycle``: start, stop, pause, resume, delete;
* ``checkpoint``: validating and applying a checkpoint's updates;
* ``state_pages``: GetDurableExecutionState and an invocation's first page;
* ``invocations``: claims, leases and the end of an invocation;
* ``timers``: due timers, and what came due while an invocation ran;
* ``callbacks``: callbacks completed or kept alive from outside;
* ``store_logs`` below: captured log lines.

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

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, insert

from recorder.config import Settings
from recorder.engine import callbacks, checkpoint, invocations, lifecycle, state_pages, timers
from recorder.engine.boundary import (
    SWEEP_SECONDS,
    CloseListener,
    FunctionSpec,
    InvocationInput,
    InvocationOutcome,
    Listener,
    StartClaimer,
    StartResult,
    normalize_input,
    now_ms,
)
from recorder.engine.transaction import Core
from recorder.store.db import Database
from recorder.store.models import LogLine
from recorder.wire import ErrorObject, ts_ms

__all__ = [
    "SWEEP_SECONDS",
    "ControlPlane",
    "FunctionSpec",
    "InvocationInput",
    "InvocationOutcome",
    "StartClaimer",
    "StartResult",
    "normalize_input",
    "now_ms",
]


class ControlPlane:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.core = Core(db, settings)
        self.db = db
        self.settings = settings
        self.owner = self.core.owner

    @property
    def start_claimer(self) -> StartClaimer | None:
        return self.core.start_claimer

    @start_claimer.setter
    def start_claimer(self, claimer: StartClaimer | None) -> None:
        self.core.start_claimer = claimer

    def add_listener(self, listener: Listener) -> None:
        self.core.notifier.listeners.append(listener)

    def add_close_listener(self, listener: CloseListener) -> None:
        """``listener(arns)`` after each commit that closed executions (recorder.engine.closings)."""
        self.core.notifier.close_listeners.append(listener)

    # --- function registry ------------------------------------------------------------

    def register_function(self, spec: FunctionSpec) -> None:
        self.core.functions.register(spec)

    def list_functions(self) -> list[FunctionSpec]:
        return self.core.functions.list()

    def get_function(self, name: str, conn: Connection | None = None) -> FunctionSpec | None:
        return self.core.functions.get(name, conn)

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        return self.core.functions.arn(name, qualifier)

    # --- lifecycle -----------------------------------------------------------------------

    def start_execution(
        self, function: str, payload: str | bytes | None = None, name: str | None = None, qualifier: str | None = None
    ) -> StartResult:
        return lifecycle.start_execution(self.core, function, payload, name, qualifier)

    def stop_execution(self, arn: str, error: ErrorObject | None = None) -> int:
        return lifecycle.stop_execution(self.core, arn, error)

    def pause_execution(self, arn: str, reason: str | None = None, timeout_paused: bool | None = None) -> None:
        lifecycle.pause_execution(self.core, arn, reason, timeout_paused)

    def resume_execution(self, arn: str, reason: str | None = None) -> None:
        lifecycle.resume_execution(self.core, arn, reason)

    def delete_execution(self, arn: str) -> int:
        return lifecycle.delete_execution(self.core, arn)

    # --- the SDK's calls -------------------------------------------------------------------

    def checkpoint(
        self, arn: str, token: Any, raw_updates: Any, client_token: Any = None, ts: Callable[[int], Any] = ts_ms
    ) -> dict[str, Any]:
        return checkpoint.checkpoint(self.core, arn, token, raw_updates, client_token, ts)

    def get_state(
        self, arn: str, token: Any, marker: Any = None, max_items: Any = None, ts: Callable[[int], Any] = ts_ms
    ) -> dict[str, Any]:
        return state_pages.get_state(self.core, arn, token, marker, max_items, ts)

    # --- invocations -----------------------------------------------------------------------

    def begin_invocation(self, execution_id: str, owner: str) -> InvocationInput | None:
        return invocations.begin_invocation(self.core, execution_id, owner)

    def renew_lease(self, execution_id: str, request_id: str, owner: str) -> bool:
        return invocations.renew_lease(self.core, execution_id, request_id, owner)

    def end_invocation(self, inv: InvocationInput, outcome: InvocationOutcome) -> bool:
        return invocations.end_invocation(self.core, inv, outcome)

    def owed_invocations(self, limit: int = 10_000) -> list[tuple[str, int]]:
        return invocations.owed_invocations(self.core, limit)

    # --- timers ----------------------------------------------------------------------------

    def due_timers(self, now: int | None = None, limit: int = 500) -> list[tuple[str, str, str]]:
        return timers.due_timers(self.core, now, limit)

    def next_timer_due(self) -> int | None:
        return timers.next_timer_due(self.core)

    def fire_timer(self, execution_id: str, kind: str, op_id: str) -> None:
        timers.fire_timer(self.core, execution_id, kind, op_id)

    # --- callbacks -------------------------------------------------------------------------

    def callback_heartbeat(self, callback_id: str) -> None:
        callbacks.callback_heartbeat(self.core, callback_id)

    def callback_complete(
        self, callback_id: str, success: bool, result: bytes | None = None, error: ErrorObject | None = None
    ) -> None:
        callbacks.callback_complete(self.core, callback_id, success, result, error)

    # --- captured logs -----------------------------------------------------------------

    def store_logs(self, execution_id: str, request_id: str, lines: Iterable[Any]) -> None:
        rows = [{"execution_id": execution_id, "request_id": request_id, "op_id": ln.op_id, "ts_ms": ln.ts_ms,
                 "level": ln.level, "logger": ln.logger, "message": ln.message,
                 "replay": getattr(ln, "replay", False), "attempt": getattr(ln, "attempt", None)} for ln in lines]
        if rows:
            with self.db.write() as conn:
                conn.execute(insert(LogLine), rows)
