"""Several engine processes on one database share the work and survive a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text

from recorder.api import Durascope, wait_until
from recorder.engine.notify import CHANNEL, WorkNotice
from tests.conftest import HANDLERS, pg_connect, register

N = 200


def _engine(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DURASCOPE_DATABASE_URL": database_url,
        "DURASCOPE_LEASE_SECONDS": "2",
        "DURASCOPE_INVOCATION_RETRY_SECONDS": "0.2",
        "PYTHONPATH": HANDLERS,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "engine"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _statuses(ds: Durascope) -> Counter[str]:
    with ds.db.read() as s:
        return Counter(dict(s.execute(text("SELECT status, COUNT(*) FROM executions GROUP BY status")).all()))


def test_two_engines_share_executions_and_one_survives_the_other_being_killed(
    database_url: str, tmp_path: Path
) -> None:
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register(ds, "sws", "th_basic:step_wait_step")
        log = tmp_path / "engines.log"
        a, b = _engine(database_url, log), _engine(database_url, log)
        try:
            arns = [ds.start("sws", json.dumps({"n": i}), name=f"m-{i}") for i in range(N)]
            wait_until(lambda: _statuses(ds)["SUCCEEDED"] >= N // 3, 120, "a third of the executions")
            a.send_signal(signal.SIGKILL)
            a.wait()
            killed_at = time.time()
            wait_until(
                lambda: _statuses(ds)["SUCCEEDED"] == N,
                240,
                f"all executions after the kill ({dict(_statuses(ds))}); log: {log.read_text()[-2000:]}",
            )
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)
        engines_before, engines_after = set(), set()
        for arn in arns:
            history = ds.history(arn)
            assert [e["EventId"] for e in history] == list(range(1, len(history) + 1)), arn
            terminal = Counter(e["Id"] for e in history if e["EventType"] in ("StepSucceeded", "WaitSucceeded"))
            assert all(v == 1 for v in terminal.values()), f"an operation completed twice in {arn}"
            assert len(terminal) == 3
            assert history[-1]["EventType"] == "ExecutionSucceeded"
            assert history[-1]["ExecutionSucceededDetails"]["Result"]["Payload"] == str(
                int(arn.split("/m-")[1].split("/")[0]) + 1
            )
        with ds.db.read() as s:
            for body, ts in s.execute(text("SELECT body, ts_ms FROM events WHERE event_type = 'InvocationStarted'")):
                engine = json.loads(body)["Engine"].rsplit(":", 1)[0]
                (engines_before if ts / 1000 < killed_at else engines_after).add(engine)
        assert len(engines_before) == 2, "both engines must have run invocations before the kill"
        assert len(engines_after) == 1, "only the survivor runs invocations after the kill"
    finally:
        ds.close()


def _notifications_until_sentinel(listener, url: str, channel: str = CHANNEL) -> list[WorkNotice]:
    """What arrived on the channel before a sentinel sent now: notifications are delivered
    in commit order, so everything committed before the sentinel has arrived by then."""
    with pg_connect(url, autocommit=True) as other:
        other.execute("SELECT pg_notify(%s, 'sentinel')", (channel,))
    got = []
    for note in listener.notifies(timeout=30):
        if note.payload == "sentinel":
            return got
        got.append(WorkNotice.from_json(note.payload))
    raise AssertionError("the sentinel did not arrive")


def test_other_engines_are_told_only_what_their_sweep_would_find_late(pg_url: str) -> None:
    """An unclaimed invocation and a timer due before the next sweep are announced; a start
    the local engine claims, and its close, whose timers are a day and two weeks away, are
    not (every engine's sweep reads those anyway)."""
    with pg_connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        ds = Durascope.open(pg_url, run_engine=False)
        try:
            register(ds, "add-one", "th_basic:add_one")
            arn = ds.start("add-one", '{"a": 1}')
            (note,) = _notifications_until_sentinel(listener, pg_url)
            assert note.invoke == (arn.rsplit("/", 1)[1],)
        finally:
            ds.close()
        with Durascope.open(pg_url) as ds:
            register(ds, "add-one", "th_basic:add_one")
            register(ds, "waits", "th_basic:waits")
            assert ds.wait(ds.start("add-one", '{"a": 2}'), 30).status == "SUCCEEDED"
            assert _notifications_until_sentinel(listener, pg_url) == []
            waiting = ds.start("waits", '{"seconds": 1}')
            assert ds.wait(waiting, 30).status == "SUCCEEDED"
            assert any(n.due_ms is not None for n in _notifications_until_sentinel(listener, pg_url))
