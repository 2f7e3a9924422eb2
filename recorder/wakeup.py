"""A loop's next wake-up as one APScheduler job: the earliest due time asked for wins.

The engine (due timers, owed invocations) and the webhook dispatcher (due retries) both
sleep until the next thing is due; the database holds the due times, this only keeps
one ``date`` job per loop at the earliest of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler


class Wakeup:
    def __init__(self, scheduler: BaseScheduler, callback: Callable[[], None], job_id: str) -> None:
        self._scheduler = scheduler
        self._callback = callback
        self._job_id = job_id
        self._lock = threading.Lock()
        self._next_ms: int | None = None

    def at(self, due_ms: int) -> None:
        """Run the callback at ``due_ms`` unless an earlier wake-up, still ahead, is set."""
        with self._lock:
            if self._next_ms is not None and int(time.time() * 1000) < self._next_ms <= due_ms:
                return
            self._next_ms = due_ms
        try:
            self._scheduler.add_job(self._callback, "date", run_date=datetime.fromtimestamp(due_ms / 1000, UTC),
                                    id=self._job_id, replace_existing=True, misfire_grace_time=None)
        except Exception:  # noqa: BLE001 - the scheduler is shut down
            pass

    def fired(self) -> None:
        """The loop woke up (by this job or otherwise): the next ``at`` sets a new time."""
        with self._lock:
            self._next_ms = None
