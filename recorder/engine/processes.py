"""The process invoker: handlers run in child interpreters; their service calls come
back to the engine over a socket pair.

In-process invocations share the engine's interpreter, so the SDK's own work (its
threads, serialization, the checkpoint batcher) and the control plane take turns under
one GIL: bench/'s W4 kept one core busy and left the other idle. With
``invoker_processes=N`` (``DURASCOPE_INVOKER_PROCESSES``) the engine starts N child
interpreters (``python -m recorder.engine.child``) and hands each invocation to the one
with the fewest in flight. A child runs it exactly as the in-process invoker does (the
same handler resolution, Lambda context and log capture, ``invoker.run_handler``) with
a service client whose checkpoint and state calls travel back to this process, where
``invoker.serve_call`` serves them. Only the engine process touches the database, so
SQLite keeps its single writer and the store does not change.

Choices, easy to change:

* Messages are pickled tuples (``multiprocessing.connection``) on an anonymous socket
  pair: both ends are this package, from the same install, so pickle is safe here.
* A child gets the engine's ``sys.path`` and environment, as an engine thread sees them:
  per-function environment variables and timeouts still need worker processes.
* A child that dies (``os._exit``, SIGKILL, out of memory) fails the invocations it was
  running with ``Runtime.ExitError``; the engine retries them as any crashed invocation,
  and the next invocation starts a new child.
* On SQLite the reader thread of a child's pipe serves its calls itself (every write is
  serialized by the file anyway, and a thread hop costs more than it saves); on
  PostgreSQL they go to a thread pool so checkpoints run in parallel.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from recorder.engine.boundary import InvocationInput, InvocationOutcome, OutcomeStatus
from recorder.engine.control import ControlPlane
from recorder.engine.invoker import runtime_exited, serve_call
from recorder.wire import ts_ms

log = logging.getLogger("durascope.engine")

# Message kinds. Engine -> child: HELLO (sys.path, threads), INVOKE (id, input, function
# ARN, memory), REPLY (call id, ok, body), STOP. Child -> engine: CALL (call id, method,
# args), DONE (id, outcome, log lines).
HELLO, INVOKE, REPLY, STOP, CALL, DONE = "hello", "invoke", "reply", "stop", "call", "done"

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ChildExited(Exception):
    """The invocation did not come back from its child interpreter (the message says why)."""


def _how(code: int | None) -> str:
    return "Runtime closed its pipe" if code is None else runtime_exited(code)


class _Child:
    def __init__(self, invoker: ProcessInvoker) -> None:
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        # The child must import this package even when it runs from a source tree.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.engine.child", str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL, env=env
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self._invoker = invoker
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, Future[tuple[InvocationOutcome, list[Any]]]] = {}
        self.alive = True
        self._send((HELLO, list(sys.path), invoker.threads))
        threading.Thread(target=self._read, name=f"durascope-child-{self.proc.pid}", daemon=True).start()

    @property
    def load(self) -> int:
        return len(self._pending)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def run(
        self, call_id: int, inv: InvocationInput, function_arn: str, memory_mb: int
    ) -> Future[tuple[InvocationOutcome, list[Any]]]:
        future: Future[tuple[InvocationOutcome, list[Any]]] = Future()
        with self._lock:
            if not self.alive:
                future.set_exception(ChildExited(_how(self.proc.poll())))
                return future
            self._pending[call_id] = future
        try:
            self._send((INVOKE, call_id, inv, function_arn, memory_mb))
        except OSError:
            pass  # the reader sees the pipe close and fails the future
        except Exception as exc:  # noqa: BLE001 - e.g. an input that does not pickle
            with self._lock:
                self._pending.pop(call_id, None)
            future.set_exception(ChildExited(f"the invocation could not be sent to the runtime: {exc}"))
        return future

    def reply(self, call_id: int, result: tuple[bool, Any]) -> None:
        try:
            self._send((REPLY, call_id, *result))
        except OSError:
            pass  # the child is gone; its invocations fail through the reader

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == CALL:
                    _, call_id, method, args = message
                    self._invoker.serve(self, call_id, method, args)
                elif message[0] == DONE:
                    _, call_id, outcome, lines = message
                    with self._lock:
                        future = self._pending.pop(call_id, None)
                    if future is not None:
                        future.set_result((outcome, lines))
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("invoker child %s sent an unreadable message", self.proc.pid)
            self.proc.kill()
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        code = self._reap()
        self.conn.close()
        for future in pending.values():
            future.set_exception(ChildExited(_how(code)))

    def stop(self) -> None:
        try:
            self._send((STOP,))
        except OSError:
            pass
        self._reap()

    def _reap(self) -> int:
        """The child's return code, once it has exited (killed if it takes over 5 s)."""
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class ProcessInvoker:
    def __init__(self, control: ControlPlane, processes: int, memory_mb: int = 512) -> None:
        if processes < 1:
            raise ValueError("invoker_processes must be at least 1")
        self.control = control
        self.memory_mb = memory_mb
        self.threads = control.settings.max_concurrent_invocations
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._serve_pool = (
            None if control.db.is_sqlite else ThreadPoolExecutor(self.threads, thread_name_prefix="durascope-serve")
        )
        # Started now, so their imports overlap with the engine's start-up.
        self._children = [_Child(self) for _ in range(processes)]

    def _child(self) -> _Child:
        with self._lock:
            if self._closed:
                raise ChildExited("the invoker is closed")
            for i, child in enumerate(self._children):
                if not child.alive:
                    self._children[i] = _Child(self)
            return min(self._children, key=lambda c: c.load)

    def serve(self, child: _Child, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        # Timestamps travel as milliseconds; the child, which has CPU to spare, makes
        # the datetimes the SDK wants.
        if self._serve_pool is None:
            child.reply(call_id, serve_call(self.control, method, args, ts_ms))
        else:
            self._serve_pool.submit(lambda: child.reply(call_id, serve_call(self.control, method, args, ts_ms)))

    def invoke(self, inv: InvocationInput) -> InvocationOutcome:
        fn_arn = self.control.function_arn(inv.function.name, "$LATEST")
        try:
            outcome, lines = self._child().run(next(self._ids), inv, fn_arn, self.memory_mb).result()
        except ChildExited as exc:
            # What Lambda reports when the runtime process exits during an invocation.
            return InvocationOutcome(
                OutcomeStatus.ERROR,
                error={"ErrorType": "Runtime.ExitError", "ErrorMessage": f"RequestId: {inv.request_id} Error: {exc}"},
            )
        if lines:
            self.control.store_logs(inv.execution_id, inv.request_id, lines)
        return outcome

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [c.proc.pid for c in self._children if c.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children = list(self._children)
        for child in children:
            child.stop()
        if self._serve_pool is not None:
            self._serve_pool.shutdown(wait=True)
