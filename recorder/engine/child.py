"""A child interpreter of the process invoker (``recorder.engine.processes``).

``python -m recorder.engine.child FD``: FD is this end of the socket pair the engine
made. The child runs each invocation it is sent on a thread of its own, exactly as the
in-process invoker would, and sends the SDK's checkpoint and state calls back to the
engine. When the engine goes away (its end closes) the child exits at once: the
invocations it was running belong to an engine that can no longer record them.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from recorder.engine.control import InvocationOutcome
from recorder.engine.invoker import HandlerCache, ServiceClient, error_from_exception, render_timestamps, run_handler
from recorder.engine.processes import CALL, DONE, HELLO, INVOKE, REPLY, STOP


@dataclass
class _Waiting:
    """A service call sent to the engine, until its reply arrives."""

    done: threading.Event = field(default_factory=threading.Event)
    reply: tuple[bool, Any] = (False, None)


class PipeServiceClient(ServiceClient):
    """Service calls answered by the engine at the other end of the pipe."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self._send = send
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}

    def call(self, method: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        call_id = next(self._ids)
        waiting = _Waiting()
        with self._lock:
            self._waiting[call_id] = waiting
        self._send((CALL, call_id, method, args))
        waiting.done.wait()
        ok, body = waiting.reply
        return ok, (render_timestamps(method, body) if ok else body)

    def answer(self, call_id: int, ok: bool, body: Any) -> None:
        with self._lock:
            waiting = self._waiting.pop(call_id, None)
        if waiting is not None:
            waiting.reply = (ok, body)
            waiting.done.set()


def main(fd: int) -> None:
    conn = Connection(fd)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        try:
            with send_lock:
                conn.send(message)
        except OSError:
            os._exit(0)  # the engine is gone

    kind, path, threads = conn.recv()
    assert kind == HELLO
    sys.path[:] = path
    client = PipeServiceClient(send)
    handlers = HandlerCache()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="durascope-invoke")

    def invoke(call_id: int, inv: Any, function_arn: str, memory_mb: int) -> None:
        # The engine waits for this answer: whatever goes wrong here must still send one.
        try:
            outcome, lines = run_handler(handlers, inv, client, function_arn, memory_mb)
            send((DONE, call_id, outcome, lines))
        except BaseException as exc:  # noqa: BLE001 - whatever the handler raises, even SystemExit, is its invocation's outcome
            send((DONE, call_id, InvocationOutcome("ERROR", error=error_from_exception(exc)), []))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == INVOKE:
            pool.submit(invoke, *message[1:])
        elif message[0] == REPLY:
            client.answer(*message[1:])
        elif message[0] == STOP:
            break
    # Handler threads may be blocked forever on replies that will not come.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
