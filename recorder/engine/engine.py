"""The engine: decides when invocations run and when timers fire.

The database holds every due time and every owed invocation; this class only keeps
the process busy with them. Commits tell it (through the control plane's listener)
which executions want an invocation and when the next timer is due; APScheduler
wakes it at that time; a periodic sweep picks up work that other processes wrote
and, after a restart, everything overdue fires at once (docs/protocol.md#invariants, 6).

Faults it rides out (issue 16, ``tests/reliability/``):

* The record of an invocation's end fails (the database restarts, or is down for a
  while): the outcome stays in memory and the end is retried with backoff, the lease
  still renewed, until the database takes it; the execution goes on at once then, not
  after its lease. An invocation that overlapped an outage is not counted as a crash
  of its handler (its checkpoints failed for the database, not for itself).
* A ``serve`` that restarts on the same host takes back at once the invocations its
  dead predecessor held (``recorder.owners``), instead of waiting out their leases.
* An invoker that runs a bounded number of invocations per function (worker processes)
  says how many (``capacity``): the engine claims no more than that, and what it cannot
  start now stays unclaimed for any engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update

from recorder.engine.boundary import SWEEP_SECONDS, InvocationInput, InvocationOutcome, now_ms
from recorder.engine.control import ControlPlane
from recorder.engine.notify import CHANNEL, WorkNotice
from recorder.owners import known_dead, owner_id
from recorder.store.availability import outage_of, report_failure
from recorder.store.models import EngineState, Execution
from recorder.wakeup import Wakeup

log = logging.getLogger("durascope.engine")
# Root logging runs at INFO for handler output (Lambda's default); the scheduler's
# per-job INFO lines are noise.
logging.getLogger("apscheduler").setLevel(logging.WARNING)

# Backoff of the retried record of an invocation's end: short enough that an execution
# goes on within a second or so of the database accepting connections again.
END_RETRY_FIRST_SECONDS = 0.05
END_RETRY_MAX_SECONDS = 1.0
# How often the sweep looks for invocations leased to dead processes of this host (and
# at start: a restarted ``serve`` takes back its predecessor's at once).
TAKE_BACK_SECONDS = 5.0
# Executions whose function an engine with a capacity per function remembers.
FUNCTIONS_REMEMBERED = 50_000


class Invoker(Protocol):
    """Runs invocations. An invoker with a bounded number of runtimes per function also
    has ``capacity(function) -> int`` (how many it can run at once) and an ``on_capacity``
    attribute, called with a function's name when its capacity grows."""

    def invoke(self, inv: InvocationInput) -> InvocationOutcome: ...


class Engine:
    def __init__(
        self, control: ControlPlane, invoker: Invoker, sweep_seconds: float = SWEEP_SECONDS, owner: str | None = None
    ) -> None:
        self.control = control
        self.invoker = invoker
        # Names this process so that a successor on the same host knows when it is dead.
        self.owner = owner or owner_id()
        self.sweep_seconds = sweep_seconds
        self._pool = ThreadPoolExecutor(
            control.settings.max_concurrent_invocations, thread_name_prefix="durascope-invoke"
        )
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        # Invocations running here, whose leases this engine keeps renewing.
        self._running: dict[str, str] = {}
        self._again: set[str] = set()
        # Invokers with a capacity per function: invocations claimed here per function, and
        # executions found wanting one when none could start (looked at again when one can).
        self._capacity = getattr(invoker, "capacity", None)
        self._claimed: Counter[str] = Counter()
        self._waiting: dict[str, dict[str, None]] = {}
        self._functions: OrderedDict[str, str] = OrderedDict()
        if self._capacity is not None:
            # Only invokers that report a capacity (the worker pool) take this hook; the
            # Invoker protocol does not name it, so mypy cannot see it.
            invoker.on_capacity = self._capacity_grew  # type: ignore[attr-defined]
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._wakeup = Wakeup(self._scheduler, self._tick, "wake")
        self._tick_lock = threading.Lock()
        self._next_take_back = 0.0
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
        self._scheduler.add_job(
            self._tick, "interval", seconds=self.sweep_seconds, id="sweep", max_instances=1, coalesce=True
        )
        # Overdue timers and owed invocations from before a restart run at once.
        self._wake_at(now_ms())
        lease = self.control.settings.lease_seconds
        self._scheduler.add_job(
            self._renew_leases, "interval", seconds=max(lease / 3, 0.2), id="leases", max_instances=1, coalesce=True
        )
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
            if self._no_runtime_for(execution_id):
                return
            self._inflight.add(execution_id)
        try:
            self._pool.submit(self._run, execution_id)
        except RuntimeError:  # pool shut down
            with self._lock:
                self._inflight.discard(execution_id)

    # --- first invocations claimed by the starting transaction (control.StartClaimer) ---

    def reserve(self, execution_id: str, function: str) -> str | None:
        with self._lock:
            if (
                self._stopping
                or not self._started
                or execution_id in self._inflight
                or len(self._inflight) >= self.control.settings.max_concurrent_invocations
            ):
                return None
            if self._capacity is not None:
                self._remember_function(execution_id, function)
                if not self._take_slot(function):
                    return None  # left unclaimed: this engine or another claims it when a runtime is free
            self._inflight.add(execution_id)
            return self.owner

    def release(self, execution_id: str, function: str) -> None:
        if self._capacity is not None:
            self._free_slot(function)
        self._finished(execution_id)

    def run(self, inv: InvocationInput) -> None:
        try:
            self._pool.submit(self._run, inv.execution_id, inv)
        except RuntimeError:  # pool shut down: the lease runs out and the next engine retries it
            self.release(inv.execution_id, inv.function.name)

    # --- capacity per function (invokers with a bounded number of runtimes) ---------------

    def _runtime_free(self, function: str) -> bool:
        """Under ``self._lock``: whether a runtime of ``function`` can take one more claim."""
        return self._capacity is not None and self._claimed[function] < self._capacity(function)

    def _take_slot(self, function: str) -> bool:
        """Under ``self._lock``: hold one of the function's runtimes for a claim."""
        assert self._capacity is not None
        if not self._runtime_free(function):
            return False
        self._claimed[function] += 1
        return True

    def _wait_for_runtime(self, function: str, execution_id: str) -> None:
        """Under ``self._lock``: submitted again when a runtime of ``function`` is free."""
        self._waiting.setdefault(function, {})[execution_id] = None

    def _no_runtime_for(self, execution_id: str) -> bool:
        """Under ``self._lock``: whether the execution's function is known here and has no
        runtime free; then it waits for one without a trip through the invocation pool
        (in W4's burst most starts find every runtime busy: each was a thread hand-off and
        a transaction that claimed nothing)."""
        function = self._functions.get(execution_id)
        if self._capacity is None or function is None or self._runtime_free(function):
            return False
        self._wait_for_runtime(function, execution_id)
        return True

    def _remember_function(self, execution_id: str, function: str) -> None:
        """Under ``self._lock``."""
        self._functions[execution_id] = function
        if len(self._functions) > FUNCTIONS_REMEMBERED:
            self._functions.popitem(last=False)

    def _free_slot(self, function: str) -> None:
        with self._lock:
            self._claimed[function] -= 1
            if self._claimed[function] <= 0:
                del self._claimed[function]
        self._capacity_grew(function)

    def _capacity_grew(self, function: str) -> None:
        """A runtime of ``function`` is free, or a new one appeared: look again at the
        executions that wanted one meanwhile (another engine may have run them since)."""
        with self._lock:
            waiting = self._waiting.get(function)
            if not waiting or not self._runtime_free(function):
                return
            execution_id = next(iter(waiting))
            del waiting[execution_id]
            if not waiting:
                del self._waiting[function]
        self.submit(execution_id)

    # --- running invocations ------------------------------------------------------------

    def _begin(self, execution_id: str) -> InvocationInput | None:
        if self._capacity is None:
            return self.control.begin_invocation(execution_id, self.owner)
        function = self._function_of(execution_id)
        if function is None:
            return None
        with self._lock:
            if not self._take_slot(function):
                self._wait_for_runtime(function, execution_id)
                return None
        try:
            inv = self.control.begin_invocation(execution_id, self.owner)
        except BaseException:
            self._free_slot(function)
            raise
        if inv is None:
            self._free_slot(function)
        return inv

    def _function_of(self, execution_id: str) -> str | None:
        """The function an execution runs (it never changes): read once, then remembered,
        so that a sweep finding executions no runtime is free for costs no transaction."""
        with self._lock:
            function = self._functions.get(execution_id)
        if function is None:
            with self.control.db.read() as s:
                function = s.execute(
                    select(Execution.function_name).where(Execution.execution_id == execution_id)
                ).scalar_one_or_none()
            if function is not None:
                with self._lock:
                    self._remember_function(execution_id, function)
        return function

    def _run(self, execution_id: str, claimed: InvocationInput | None = None) -> None:
        inv = claimed
        try:
            while not self._stopping:
                if inv is None:
                    inv = self._begin(execution_id)
                if inv is None:
                    break
                try:
                    if not self._invoke_and_end(inv):
                        break
                finally:
                    if self._capacity is not None:
                        self._free_slot(inv.function.name)
                inv = None
        except Exception:  # noqa: BLE001 - keep the engine alive; the sweep retries
            report_failure(log, "invocation of %s failed in the engine", execution_id)
        finally:
            self._finished(execution_id)

    def _invoke_and_end(self, inv: InvocationInput) -> bool:
        """Run one invocation and record its end; True when the execution wants another now.
        The lease stays renewed until the end is recorded."""
        execution_id = inv.execution_id
        with self._lock:
            self._running[execution_id] = inv.request_id
        try:
            started = time.monotonic()
            return self._end(inv, self.invoker.invoke(inv), started)
        finally:
            with self._lock:
                self._running.pop(execution_id, None)

    def _end(self, inv: InvocationInput, outcome: InvocationOutcome, started: float) -> bool:
        """``end_invocation``, retried with backoff while it fails: the outcome is only
        here. A failure other than an outage is retried for as long as the lease would
        have lasted; then the lease runs out and the next claim records the invocation lost."""
        delay = END_RETRY_FIRST_SECONDS
        give_up = time.monotonic() + self.control.settings.lease_seconds
        told = False
        while True:
            # A failed invocation that overlapped an outage failed for the database.
            engine_fault = outcome.status == "ERROR" and self.control.db.availability.failed_since(started)
            try:
                return self.control.end_invocation(inv, outcome, engine_fault)
            except Exception as exc:
                outage = outage_of(exc) is not None
                if self._stopping or (not outage and time.monotonic() > give_up):
                    raise
                if not told:
                    report_failure(log, "recording the end of invocation %s failed; retrying", inv.request_id)
                    told = not outage
            time.sleep(delay)
            delay = min(delay * 2, END_RETRY_MAX_SECONDS)

    def _finished(self, execution_id: str) -> None:
        with self._lock:
            self._inflight.discard(execution_id)
            again = execution_id in self._again
            self._again.discard(execution_id)
        if again and not self._stopping:
            self.submit(execution_id)

    def _take_back_dead_leases(self) -> None:
        """Invocations leased to a process of this host that is gone (a ``serve`` killed
        and restarted) are owed again now, not when their leases run out."""
        now = now_ms()
        held = (EngineState.request_id.is_not(None), EngineState.lease_expires_ms > now)
        with self.control.db.read() as s:
            owners = (
                s.execute(
                    select(EngineState.lease_owner).distinct().where(*held, EngineState.lease_owner != self.owner)
                )
                .scalars()
                .all()
            )
        dead = [o for o in owners if o is not None and known_dead(o)]
        if not dead:
            return
        with self.control.db.write() as conn:
            taken = conn.execute(
                update(EngineState).where(EngineState.lease_owner.in_(dead), *held).values(lease_expires_ms=now)
            ).rowcount
        log.info("took back %d invocation(s) from %s: processes of this host that are gone", taken, ", ".join(dead))

    def _renew_leases(self) -> None:
        """A long step checkpoints rarely; keep its invocation ours while it runs."""
        with self._lock:
            running = list(self._running.items())
        for execution_id, request_id in running:
            try:
                self.control.renew_lease(execution_id, request_id, self.owner)
            except Exception:  # noqa: BLE001 - a failed renewal is reported; the next tick renews again
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
            if time.monotonic() >= self._next_take_back:
                self._next_take_back = time.monotonic() + TAKE_BACK_SECONDS
                self._take_back_dead_leases()
            now = now_ms()
            while True:
                due = self.control.due_timers(now)
                for execution_id, kind, op_id in due:
                    try:
                        self.control.fire_timer(execution_id, kind, op_id)
                    except Exception:  # noqa: BLE001 - one timer's failure must not stop the others; the sweep retries it
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
        except Exception:  # noqa: BLE001 - the engine loop must survive any tick; the next tick retries
            report_failure(log, "engine tick failed")
        finally:
            self._tick_lock.release()
