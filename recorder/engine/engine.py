"""The engine: decides when invocations run and when timers fire.

The database holds every due time and every owed invocation; this class only keeps
the process busy with them. Commits tell it (through the control plane's listener)
which executions want an invocation and when the next timer is due; APScheduler
wakes it at that time; a periodic sweep picks up work that other processes wrote
and, after a restart, everything overdue fires at once (DESIGN invariant 6).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from recorder.engine.boundary import SWEEP_SECONDS, InvocationInput, InvocationOutcome, now_ms
from recorder.engine.control import ControlPlane
from recorder.engine.notify import CHANNEL, WorkNotice
from recorder.store.availability import report_failure
from recorder.wakeup import Wakeup

log = logging.getLogger("durascope.engine")
# Root logging runs at INFO for handler output (Lambda's default); the scheduler's
# per-job INFO lines are noise.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Invoker(Protocol):
    def invoke(self, inv: InvocationInput) -> InvocationOutcome: ...


class Engine:
    def __init__(self, control: ControlPlane, invoker: Invoker, sweep_seconds: float = SWEEP_SECONDS,
                 owner: str | None = None) -> None:
        self.control = control
        self.invoker = invoker
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sweep_seconds = sweep_seconds
        self._pool = ThreadPoolExecutor(control.settings.max_concurrent_invocations,
                                        thread_name_prefix="durascope-invoke")
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        # Invocations running here, whose leases this engine keeps renewing.
        self._running: dict[str, str] = {}
        self._again: set[str] = set()
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._wakeup = Wakeup(self._scheduler, self._tick, "wake")
        self._tick_lock = threading.Lock()
        self._started = False
        self._stopping = False
        control.add_listener(self._on_commit)
        control.start_claimer = self

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._scheduler.start()
        self._scheduler.add_job(self._tick, "interval", seconds=self.sweep_seconds, id="sweep",
                                max_instances=1, coalesce=True)
        # Overdue timers and owed invocations from before a restart run at once.
        self._wake_at(now_ms())
        lease = self.control.settings.lease_seconds
        self._scheduler.add_job(self._renew_leases, "interval", seconds=max(lease / 3, 0.2), id="leases",
                                max_instances=1, coalesce=True)
        if self.control.db.dialect == "postgresql":
            threading.Thread(target=self._listen, name="durascope-listen", daemon=True).start()

    def stop(self, wait: bool = True) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._started:
            self._scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def idle(self) -> bool:
        with self._lock:
            return not self._inflight

    # --- signals from commits ----------------------------------------------------------

    def _on_commit(self, invoke: set[str], dues: list[int]) -> None:
        if self._stopping:
            return
        now = now_ms()
        for execution_id in invoke:
            self.submit(execution_id)
        later = [d for d in dues if d > now]
        if later:
            self._wake_at(min(later))

    def submit(self, execution_id: str, sweep: bool = False) -> None:
        """Run the execution's owed invocations. A commit that wants an invocation while one
        runs here is remembered, and looked at again when it ends; a sweep's find is not:
        the running loop sees that work itself, and each second look was a write transaction
        in which begin_invocation found nothing (67 of them in one W4 run of 100 executions)."""
        with self._lock:
            if execution_id in self._inflight:
                if not sweep:
                    self._again.add(execution_id)
                return
            self._inflight.add(execution_id)
        try:
            self._pool.submit(self._run, execution_id)
        except RuntimeError:  # pool shut down
            with self._lock:
                self._inflight.discard(execution_id)

    # --- first invocations claimed by the starting transaction (control.StartClaimer) ---

    def reserve(self, execution_id: str) -> str | None:
        with self._lock:
            if (self._stopping or not self._started or execution_id in self._inflight
                    or len(self._inflight) >= self.control.settings.max_concurrent_invocations):
                return None
            self._inflight.add(execution_id)
            return self.owner

    def release(self, execution_id: str) -> None:
        self._finished(execution_id)

    def run(self, inv: InvocationInput) -> None:
        try:
            self._pool.submit(self._run, inv.execution_id, inv)
        except RuntimeError:  # pool shut down: the lease runs out and the next engine retries it
            self._finished(inv.execution_id)

    def _run(self, execution_id: str, claimed: InvocationInput | None = None) -> None:
        inv = claimed
        try:
            while not self._stopping:
                if inv is None:
                    inv = self.control.begin_invocation(execution_id, self.owner)
                if inv is None:
                    break
                with self._lock:
                    self._running[execution_id] = inv.request_id
                try:
                    outcome = self.invoker.invoke(inv)
                finally:
                    with self._lock:
                        self._running.pop(execution_id, None)
                if not self.control.end_invocation(inv, outcome):
                    break
                inv = None
        except Exception:  # noqa: BLE001 - keep the engine alive; the sweep retries
            report_failure(log, "invocation of %s failed in the engine", execution_id)
        finally:
            self._finished(execution_id)

    def _finished(self, execution_id: str) -> None:
        with self._lock:
            self._inflight.discard(execution_id)
            again = execution_id in self._again
            self._again.discard(execution_id)
        if again and not self._stopping:
            self.submit(execution_id)

    def _renew_leases(self) -> None:
        """A long step checkpoints rarely; keep its invocation ours while it runs."""
        with self._lock:
            running = list(self._running.items())
        for execution_id, request_id in running:
            try:
                self.control.renew_lease(execution_id, request_id, self.owner)
            except Exception:  # noqa: BLE001
                report_failure(log, "lease renewal of %s failed", execution_id)

    def _listen(self) -> None:
        """PostgreSQL: other engines announce work they committed (NOTIFY durascope_work)."""
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.control.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopping:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stopping:
                        for note in conn.notifies(timeout=1.0):
                            notice = WorkNotice.from_json(note.payload)
                            if notice.owner == self.control.owner:
                                continue
                            for execution_id in notice.invoke:
                                self.submit(execution_id)
                            if notice.due_ms:
                                self._wake_at(max(notice.due_ms, now_ms() + 1))
            except Exception:  # noqa: BLE001 - reconnect; the sweep covers the gap
                if not self._stopping:
                    report_failure(log, "LISTEN connection lost; reconnecting")
                    time.sleep(1.0)

    # --- time --------------------------------------------------------------------------

    def _wake_at(self, due_ms: int) -> None:
        self._wakeup.at(due_ms)

    def _tick(self) -> None:
        if self._stopping or not self._tick_lock.acquire(blocking=False):
            return
        try:
            self._wakeup.fired()
            now = now_ms()
            while True:
                due = self.control.due_timers(now)
                for execution_id, kind, op_id in due:
                    try:
                        self.control.fire_timer(execution_id, kind, op_id)
                    except Exception:  # noqa: BLE001
                        report_failure(log, "timer %s/%s/%s failed", execution_id, kind, op_id)
                if len(due) < 500:
                    break
            later = []
            for execution_id, due_ms in self.control.owed_invocations():
                if due_ms <= now:
                    self.submit(execution_id, sweep=True)
                else:
                    later.append(due_ms)
            next_timer = self.control.next_timer_due()
            candidates = [d for d in [next_timer, *later] if d is not None]
            if candidates:
                self._wake_at(max(min(candidates), now_ms() + 5))
        except Exception:  # noqa: BLE001
            report_failure(log, "engine tick failed")
        finally:
            self._tick_lock.release()
