"""The one-job wake-up of the engine and the webhook dispatcher (``recorder.wakeup``)."""

from __future__ import annotations

import random
import sys
import threading
import time
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler

from recorder.api import wait_until
from recorder.wakeup import Wakeup


def test_the_earliest_of_concurrent_wake_ups_wins() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        wakeup = Wakeup(scheduler, lambda: None, "wake")
        base = int(time.time() * 1000) + 3_600_000
        # Each thread asks for ever earlier times, so most calls move the job.
        dues = [base + 10_000_000 - k * 7 - random.randrange(7) for k in range(4000)]
        chunks = [dues[i::8] for i in range(8)]
        threads = [threading.Thread(target=lambda c=c: [wakeup.at(d) for d in c]) for c in chunks]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race is narrow
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(interval)
        job = scheduler.get_job("wake")
        assert job is not None
        assert int(job.next_run_time.timestamp() * 1000) == min(dues)
    finally:
        scheduler.shutdown(wait=False)


def test_a_wake_up_runs_its_callback_and_the_next_one_can_be_set_again() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    runs: list[float] = []
    try:
        wakeup = Wakeup(scheduler, lambda: (runs.append(time.time()), wakeup.fired()), "wake")
        wakeup.at(int(time.time() * 1000))
        wait_until(lambda: len(runs) == 1, 10, "the first wake-up did not run")
        # The job stays (a later wake-up moves it) instead of being removed after its run.
        assert scheduler.get_job("wake") is not None
        wakeup.at(int(time.time() * 1000) + 50)
        wait_until(lambda: len(runs) == 2, 10, "the second wake-up did not run")
    finally:
        scheduler.shutdown(wait=False)
