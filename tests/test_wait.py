"""``Durascope.wait``: woken by the close this process commits, re-reading for closes
committed elsewhere (recorder.engine.closings)."""

from __future__ import annotations

import threading

import pytest

from recorder.api import Durascope, ExecutionSummary
from recorder.config import Settings
from tests.conftest import register
from tests.test_engine import callback_id, suspended


class _CountingDurascope(Durascope):
    """Counts the row reads ``wait`` makes."""

    reads = 0

    def describe(self, arn: str) -> ExecutionSummary:
        self.reads += 1
        return super().describe(arn)


def _waiter(ds: Durascope, arn: str) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["summary"] = ds.wait(arn, 30)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_the_close_wakes_the_waiter_without_polling(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # With re-reads an hour apart, only the close's wake-up can end the wait.
    monkeypatch.setattr(Durascope, "RECHECK_SECONDS", 3600.0)
    ds = _CountingDurascope(Settings.from_env(database_url=database_url))
    try:
        register(ds, "approval", "th_basic:approval")
        arn = ds.start("approval", "{}")
        cid = callback_id(ds, arn)
        suspended(ds, arn)
        ds.reads = 0
        thread, out = _waiter(ds, arn)
        ds.wait_for(lambda: ds.reads >= 1, 10, "the waiter never read the execution")
        # The resumed invocation takes over 100 ms (the SDK idles that long at its end), so
        # a polling wait would read many times; this one reads once more, when woken.
        ds.callback_success(cid, b'"ok"')
        thread.join(20)
        assert not thread.is_alive(), "wait was not woken by the close"
        assert "error" not in out, out
        summary = out["summary"]
        assert isinstance(summary, ExecutionSummary) and summary.status == "SUCCEEDED"
        assert ds.reads == 2
    finally:
        ds.close()


def test_a_close_committed_by_another_process_is_seen_by_re_reading(database_url: str) -> None:
    runner = Durascope.open(database_url)
    # A second Durascope on the same store stands for another process: its control plane
    # never hears of the stop the first one commits.
    other = Durascope.open(database_url)
    try:
        register(runner, "approval", "th_basic:approval")
        arn = runner.start("approval", "{}")
        suspended(runner, arn)
        thread, out = _waiter(other, arn)
        runner.stop(arn)
        thread.join(20)
        assert not thread.is_alive()
        summary = out.get("summary")
        assert isinstance(summary, ExecutionSummary) and summary.status == "STOPPED", out
    finally:
        other.close()
        runner.close()


def test_wait_times_out_and_leaves_no_watcher(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", "{}")
    suspended(ds, arn)
    with pytest.raises(TimeoutError, match="did not finish within 0.2 s"):
        ds.wait(arn, 0.2)
    assert ds.closings._waiting == {}
