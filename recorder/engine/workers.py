"""Invocations for worker processes: the engine side of Lambda's Runtime API.

``WorkerPool`` is an invoker: ``invoke`` queues the invocation input under its
function and blocks the engine thread until a worker host has taken it and answered
(or it timed out). Worker hosts (``recorder.worker``) long-poll ``next`` over HTTP
(``viewer.runtime_api``) or, for workers started by this process, directly. The
queue is in memory on purpose: the store already knows which invocation is owed and
leased; if this engine dies its leases expire and another engine re-drives them.

Timeouts follow Lambda: the function's timeout counts from the moment a worker takes
the invocation; a worker that has not answered by then is reported ``Sandbox.Timedout``
and the invocation is retried like any failed one. So do size limits: a response over
``RESPONSE_LIMIT`` fails the invocation with ``Function.ResponseSizeTooLarge``.

The engine claims an invocation only when a worker can take it now (``capacity``):
the workers of a function are those waiting in ``next``, busy with one of its
invocations, or back from ``next`` moments ago; with none yet, one, so that the first
invocation starts the local workers on demand. What no worker can take stays unclaimed
in the store, for this engine's next free worker or another engine's.

A worker host on another machine asks ``gone`` which of the invocations it runs this
engine no longer waits for (it stopped, restarted, or gave up on them), and stops
their runtimes: no runtime outlives the engine it works for by more than a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recorder.engine.boundary import (
    RESPONSE_LIMIT,
    RESPONSE_TOO_LARGE,
    InvocationInput,
    InvocationOutcome,
    OutcomeStatus,
)
from recorder.engine.control import ControlPlane
from recorder.errors import ResourceNotFoundException

# Grace added to the function timeout before the engine gives up on a taken invocation
# (the worker host itself kills its runtime at the deadline and reports it).
TIMEOUT_GRACE_SECONDS = 5.0
# A worker back from ``next`` this recently still counts as one of its function's workers
# (it is on its way to ask again, or to answer).
WORKER_SEEN_SECONDS = 5.0


def invocation_event(inv: InvocationInput) -> dict[str, Any]:
    """The Lambda event of a durable invocation (docs/protocol.md#invocation-event; timestamps in epoch ms)."""
    return {
        "DurableExecutionArn": inv.arn,
        "CheckpointToken": inv.token,
        "InitialExecutionState": {"Operations": inv.operations, "NextMarker": inv.next_marker},
        "UpdatedOperationIds": inv.updated_operation_ids,
    }


@dataclass
class Assignment:
    """An invocation a worker has taken."""

    request_id: str
    function: str
    event: dict[str, Any]
    deadline_ms: int
    function_arn: str


@dataclass
class _Pending:
    inv: InvocationInput
    taken_at: float | None = None
    worker: str | None = None
    outcome: InvocationOutcome | None = None
    done: threading.Event = field(default_factory=threading.Event)
    logs_taken: bool = False


class WorkerPool:
    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self._lock = threading.Lock()
        # Per function, the workers waiting in ``next``: a queued invocation wakes one of
        # them, not every worker of every function (16 runtimes woken per invocation, 15 of
        # them to find nothing, was a third of the engine's CPU in W4 through workers).
        self._arrived: dict[str, threading.Condition] = {}
        # Woken when an invocation leaves _by_request (for ``gone``), on the same lock.
        self._left = threading.Condition(self._lock)
        self._queues: dict[str, deque[_Pending]] = {}
        self._by_request: dict[str, _Pending] = {}
        self._last_poll: dict[str, float] = {}
        # Per function: the workers waiting in ``next``, and when each was last seen there.
        self._polling: dict[str, Counter[str]] = {}
        self._seen: dict[str, dict[str, float]] = {}
        # Called with a function name when an invocation for it is queued, so a local
        # manager can start worker processes on demand.
        self.on_demand: Callable[[str], None] | None = None
        # Called with a function name when a worker of it is seen for the first time (the
        # engine sets it: it may claim more of that function's invocations now).
        self.on_capacity: Callable[[str], None] | None = None
        self._closed = False

    # --- the Invoker side ------------------------------------------------------------

    def invoke(self, inv: InvocationInput) -> InvocationOutcome:
        pending = _Pending(inv)
        with self._lock:
            self._queues.setdefault(inv.function.name, deque()).append(pending)
            self._by_request[inv.request_id] = pending
            self._arrival(inv.function.name).notify()
        if self.on_demand is not None:
            self.on_demand(inv.function.name)
        try:
            while not pending.done.wait(0.5):
                if self._closed:
                    return InvocationOutcome(
                        OutcomeStatus.ERROR,
                        error={
                            "ErrorType": "Runtime.Unavailable",
                            "ErrorMessage": "The engine stopped before a worker answered",
                        },
                    )
                if pending.taken_at is not None:
                    limit = inv.function.timeout + TIMEOUT_GRACE_SECONDS
                    if time.monotonic() - pending.taken_at > limit:
                        return InvocationOutcome(
                            OutcomeStatus.ERROR,
                            error={
                                "ErrorType": "Sandbox.Timedout",
                                "ErrorMessage": f"Task timed out after {inv.function.timeout:.2f} seconds",
                            },
                        )
            assert pending.outcome is not None
            return pending.outcome
        finally:
            with self._lock:
                self._by_request.pop(inv.request_id, None)
                queue = self._queues.get(inv.function.name)
                if queue and pending in queue:
                    queue.remove(pending)
                self._left.notify_all()

    def capacity(self, function: str) -> int:
        """How many invocations of ``function`` the workers here can run at once."""
        now = time.monotonic()
        with self._lock:
            workers = {w for w, t in self._seen.get(function, {}).items() if now - t < WORKER_SEEN_SECONDS}
            workers.update(self._polling.get(function, ()))
            workers.update(
                p.worker for p in self._by_request.values() if p.worker is not None and p.inv.function.name == function
            )
        return max(1, len(workers))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for arrived in self._arrived.values():
                arrived.notify_all()
            self._left.notify_all()

    def _arrival(self, function: str) -> threading.Condition:
        """Under ``self._lock``: the condition ``function``'s workers wait on in ``next``."""
        arrived = self._arrived.get(function)
        if arrived is None:
            arrived = self._arrived[function] = threading.Condition(self._lock)
        return arrived

    # --- the worker side ---------------------------------------------------------------

    def next(self, function: str, worker: str, wait_seconds: float) -> Assignment | None:
        """Long-poll: the oldest queued invocation of ``function``, or None after ``wait_seconds``."""
        if self.control.get_function(function) is None:
            raise ResourceNotFoundException(f"Function not found: {function}")
        deadline = time.monotonic() + wait_seconds
        with self._lock:
            self._last_poll[function] = time.monotonic()
            polling = self._polling.setdefault(function, Counter())
            seen = self._seen.setdefault(function, {})
            new = worker not in polling and worker not in seen
            polling[worker] += 1
        if new and self.on_capacity is not None:
            self.on_capacity(function)
        try:
            return self._next(function, worker, deadline)
        finally:
            with self._lock:
                polling[worker] -= 1
                if polling[worker] <= 0:
                    del polling[worker]
                now = time.monotonic()
                seen[worker] = now
                for w, t in list(seen.items()):
                    if now - t > WORKER_SEEN_SECONDS and w not in polling:
                        del seen[w]

    def _next(self, function: str, worker: str, deadline: float) -> Assignment | None:
        with self._lock:
            arrived = self._arrival(function)
            while True:
                queue = self._queues.get(function)
                if queue:
                    pending = queue.popleft()
                    pending.taken_at = time.monotonic()
                    pending.worker = worker
                    inv = pending.inv
                    return Assignment(
                        request_id=inv.request_id,
                        function=function,
                        event=invocation_event(inv),
                        deadline_ms=int(time.time() * 1000) + inv.function.timeout * 1000,
                        function_arn=self.control.function_arn(function, "$LATEST"),
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                # A wake-up that comes as the wait times out is not lost: the queue is
                # looked at again before giving up.
                arrived.wait(remaining)

    def respond(self, request_id: str, body: bytes) -> bool:
        """The handler's output (the durable envelope as JSON)."""
        if len(body) > RESPONSE_LIMIT:
            return self.fail(request_id, RESPONSE_TOO_LARGE)
        try:
            output = json.loads(body) if body else None
        except ValueError:
            output = None
        outcome = InvocationOutcome.from_envelope(output)
        return self._finish(request_id, outcome)

    def fail(self, request_id: str, error: dict[str, Any]) -> bool:
        """The invocation itself failed: the handler raised past the SDK, the runtime
        crashed or timed out. Lambda's ``{errorType, errorMessage, stackTrace}``."""
        converted: dict[str, Any] = {
            "ErrorType": str(error.get("errorType") or error.get("ErrorType") or "Runtime.Unknown"),
            "ErrorMessage": str(error.get("errorMessage") or error.get("ErrorMessage") or ""),
        }
        trace = error.get("stackTrace") or error.get("StackTrace")
        if isinstance(trace, list):
            converted["StackTrace"] = [str(x) for x in trace][:50]
        return self._finish(request_id, InvocationOutcome(OutcomeStatus.ERROR, error=converted))

    def _finish(self, request_id: str, outcome: InvocationOutcome) -> bool:
        with self._lock:
            pending = self._by_request.get(request_id)
        if pending is None or pending.done.is_set():
            return False
        pending.outcome = outcome
        pending.done.set()
        return True

    def take_logs(self, request_id: str) -> str | None:
        """The execution whose invocation ``request_id`` is, the first time its output is
        handed in; None for an unknown invocation or a second batch (each invocation's
        output is capped once, as a whole)."""
        with self._lock:
            pending = self._by_request.get(request_id)
            if pending is None or pending.logs_taken:
                return None
            pending.logs_taken = True
            return pending.inv.execution_id

    def gone(self, request_ids: list[str], wait_seconds: float) -> list[str]:
        """Those of ``request_ids`` this engine does not wait for (any more); if it waits for
        all of them, blocks until one leaves or ``wait_seconds`` pass."""
        deadline = time.monotonic() + wait_seconds
        with self._lock:
            while True:
                gone = [r for r in request_ids if (p := self._by_request.get(r)) is None or p.done.is_set()]
                remaining = deadline - time.monotonic()
                if gone or remaining <= 0 or self._closed:
                    return gone
                self._left.wait(remaining)
