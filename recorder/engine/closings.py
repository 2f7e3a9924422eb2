"""Wake threads that wait for an execution to close, as soon as the close commits here.

``Durascope.wait`` used to poll the execution's row (a read transaction each time, from
5 ms backing off to 100 ms). Every poll costs the engine's process CPU that its
invocations need (bench/'s W4 client polled ~150 times a run), and a poll that backs off
sees the close up to 100 ms late. The control plane already knows, after each commit,
which executions that transaction closed; ``Closings`` hands that to the waiters.

The database stays the truth: a waiter registers first and then reads the row, so a
close committed in between is seen either by the read or by the wake-up. Closes that
another process commits (a second engine on PostgreSQL, ``durascope serve`` on the same
SQLite file) wake nobody here, so waiters still re-read the row now and then
(``Durascope.RECHECK_SECONDS``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Closings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}

    @contextmanager
    def watch(self, arn: str) -> Iterator[threading.Event]:
        """An event set when this process commits the close of ``arn`` (the stored ARN)."""
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(arn, []).append(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiting.get(arn)
                if events is not None:
                    events.remove(event)
                    if not events:
                        del self._waiting[arn]

    def closed(self, arns: Iterable[str]) -> None:
        """Called after a commit with the ARNs of the executions it closed."""
        with self._lock:
            if not self._waiting:
                return
            events = [e for arn in arns for e in self._waiting.get(arn, ())]
        for event in events:
            event.set()
