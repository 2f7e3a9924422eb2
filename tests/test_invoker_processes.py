"""Handlers in child interpreters of the engine (``invoker_processes``), checkpointing over a pipe."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.api import Durascope, wait_until
from recorder.config import Settings
from recorder.queries import execution_logs
from tests.conftest import HANDLERS


@pytest.fixture
def pds(database_url: str) -> Iterator[Durascope]:
    d = Durascope.open(database_url, invoker_processes=2)
    try:
        yield d
    finally:
        d.close()


def _errors(ds: Durascope, arn: str) -> list[dict[str, str]]:
    return [
        e["InvocationCompletedDetails"]["Error"]["Payload"]
        for e in ds.history(arn)
        if e["EventType"] == "InvocationCompleted" and "Error" in e["InvocationCompletedDetails"]
    ]


def test_handlers_run_in_child_interpreters_with_the_same_history_and_logs(pds: Durascope, tmp_path: Path) -> None:
    assert pds.invoker is not None
    children = pds.invoker.pids
    assert len(children) == 2 and os.getpid() not in children
    pds.register_function("whoami", "th_workers.whoami", code_dir=HANDLERS)
    pds.register_function("steps", "th_basic.many_steps", code_dir=HANDLERS)
    arn = pds.start("whoami", "{}")
    done = pds.wait(arn, 60)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result or "{}")["pid"] in children
    # What the handler printed in the child is stored with its invocation.
    assert any("hello from pid" in line.message for line in execution_logs(pds.db, arn))

    # Many executions at once share the children; every history is whole and in order.
    arns = [pds.start("steps", json.dumps({"n": 5, "path": str(tmp_path / f"{i}.txt")})) for i in range(20)]
    for i, a in enumerate(arns):
        summary = pds.wait(a, 60)
        assert summary.status == "SUCCEEDED" and summary.result == "10", summary.error
        assert (tmp_path / f"{i}.txt").read_text().split() == ["0", "1", "2", "3", "4"]
        types = [e["EventType"] for e in pds.history(a)]
        assert types == (
            ["ExecutionStarted"] + ["StepStarted", "StepSucceeded"] * 5 + ["InvocationCompleted", "ExecutionSucceeded"]
        )
        assert [e["EventId"] for e in pds.history(a)] == list(range(1, len(types) + 1))


def test_waits_and_callbacks_resume_in_a_child(pds: Durascope) -> None:
    """Re-invocations carry the stored operations over the pipe; the callback's result
    reaches the handler in whichever child runs the next invocation."""
    pds.register_function("waits", "th_basic.waits", code_dir=HANDLERS)
    pds.register_function("approval", "th_basic.approval", code_dir=HANDLERS)
    waiting = pds.start("waits", json.dumps({"seconds": 1}))
    approving = pds.start("approval", "{}")
    callback_id = wait_until(
        lambda: next(
            (
                e["CallbackStartedDetails"]["CallbackId"]
                for e in pds.history(approving)
                if e["EventType"] == "CallbackStarted"
            ),
            None,
        ),
        30,
        "no callback",
    )
    pds.callback_success(callback_id, json.dumps({"ok": True}))
    # The SDK hands the handler the callback's payload as the string that was sent.
    assert pds.wait(approving, 60).result == json.dumps(json.dumps({"ok": True}))
    done = pds.wait(waiting, 60)
    assert done.status == "SUCCEEDED" and done.result == '"woke"'
    assert [e["EventType"] for e in pds.history(waiting)].count("InvocationCompleted") == 2


@pytest.mark.parametrize("how,exit_text", [("exit", "status 3"), ("sigkill", "signal SIGKILL")])
def test_a_child_that_dies_mid_invocation_is_replaced_and_the_invocation_retried(
    pds: Durascope, tmp_path: Path, how: str, exit_text: str
) -> None:
    assert pds.invoker is not None
    before = set(pds.invoker.pids)
    pds.register_function("dies", "th_workers.dies_once", code_dir=HANDLERS)
    arn = pds.start("dies", json.dumps({"marker": str(tmp_path / "m"), "how": how}))
    done = pds.wait(arn, 60)
    assert done.status == "SUCCEEDED" and done.result == '"survived"', done.error
    errors = _errors(pds, arn)
    assert [e["ErrorType"] for e in errors] == ["Runtime.ExitError"]
    assert exit_text in errors[0]["ErrorMessage"]
    # The step that completed before the crash did not run again.
    assert [e["Name"] for e in pds.history(arn) if e["EventType"] == "StepSucceeded"] == ["before", "crash"]
    after = set(pds.invoker.pids)
    assert len(after) == 2 and len(after - before) == 1


def test_close_stops_the_children(database_url: str) -> None:
    d = Durascope.open(database_url, invoker_processes=1)
    assert d.invoker is not None
    pid = d.invoker.pids[0]
    d.close()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 10, f"child {pid} still running after close")


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_bad_process_count_is_refused_with_the_setting_named(value: str) -> None:
    with pytest.raises(ValueError, match="DURASCOPE_INVOKER_PROCESSES"):
        Settings.from_env({"DURASCOPE_INVOKER_PROCESSES": value})
