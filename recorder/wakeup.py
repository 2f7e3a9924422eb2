"""A loop's next wake-up as one APScheduler job: the earliest due time asked for wins.

The engine (due timers, owed invocations) and the webhook dispatcher (due retries) both
sleep until the next thing is due; the database holds the due times, this only keeps
one job per loop at the earliest of them.

The job is never removed: its trigger is a year-long interval, and each wake-up moves
its next run time. A ``date`` job is removed by the scheduler's own thread after it
runs, and when that coincided with ``shutdown()`` APScheduler 3 raised JobLookupError
in that thread (it looks a job up among pending jobs once it is stopped).
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
        when = datetime.fromtimestamp(due_ms / 1000, UTC)
        # One critical section: two callers must not move the job in the opposite order
        # to the one in which they compared their times.
        with self._lock:
            if self._next_ms is not None and int(time.time() * 1000) < self._next_ms <= due_ms:
                return
            self._next_ms = due_ms
            try:
                if self._scheduler.get_job(self._job_id) is None:
                    self._scheduler.add_job(
                        self._callback,
                        "interval",
                        days=365,
                        id=self._job_id,
                        next_run_time=when,
                        misfire_grace_time=None,
                        coalesce=True,
                    )
                else:
                    self._scheduler.modify_job(self._job_id, next_run_time=when)
            except Exception:  # noqa: BLE001 - the scheduler is shut down
                pass

    def fired(self) -> None:
        """The loop woke up (by this job or otherwise): the next ``at`` sets a new time."""
        with self._lock:
            self._next_ms = None
