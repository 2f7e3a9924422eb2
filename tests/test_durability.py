"""Durable time and exactly-once steps across engine crashes (issue: SIGKILL mid-execution)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from recorder.api import Durascope, wait_until
from tests.conftest import HANDLERS, register


def _engine(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DURASCOPE_DATABASE_URL": database_url,
        "DURASCOPE_LEASE_SECONDS": "1",
        "DURASCOPE_INVOCATION_RETRY_SECONDS": "0.2",
        "PYTHONPATH": HANDLERS,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "engine"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def test_sigkill_mid_execution_never_reruns_a_completed_step(database_url: str, tmp_path: Path) -> None:
    side_effects = tmp_path / "side-effects.txt"
    side_effects.touch()
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register(ds, "many", "th_basic:many_steps")
        arn = ds.start("many", f'{{"n": 200, "path": "{side_effects}"}}')
        log = tmp_path / "engine.log"

        first = _engine(database_url, log)
        try:
            wait_until(lambda: len(side_effects.read_text().splitlines()) >= 60, 60, "60 steps before the kill")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        succeeded_before_kill = {e["Name"] for e in ds.history(arn) if e["EventType"] == "StepSucceeded"}
        assert 50 <= len(succeeded_before_kill) < 200, "the kill must land mid-execution"
        assert ds.describe(arn).status == "RUNNING"

        second = _engine(database_url, log)
        try:
            done = wait_until(lambda: (d := ds.describe(arn)).done and d, 120, "the execution to finish after restart")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert done.status == "SUCCEEDED", log.read_text()[-3000:]
        assert done.result == str(sum(range(200)))

        counts = Counter(int(x) for x in side_effects.read_text().split())
        assert set(counts) == set(range(200))
        for name in succeeded_before_kill:
            assert counts[int(name.split("-")[1])] == 1, f"{name} completed before the kill but ran again"
        # At most the one step that was running when the engine died ran twice.
        assert sum(counts.values()) - 200 <= 1

        history = ds.history(arn)
        assert [e["EventId"] for e in history] == list(range(1, len(history) + 1))
        lost = [
            e
            for e in history
            if e["EventType"] == "InvocationCompleted" and e["InvocationCompletedDetails"].get("Error")
        ]
        assert lost and lost[0]["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorType"] == "Runtime.ExitError"
    finally:
        ds.close()
