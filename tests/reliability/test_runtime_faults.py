"""Faults of the processes that run handlers: a runtime SIGKILLed mid-step, and an
engine SIGKILLed while its runtimes (worker processes, child interpreters, a remote
worker's runtimes) are mid-step. No runtime may outlive its engine by more than a few
seconds, and after the fault every execution completes with nothing run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.api import Durascope, wait_until
from tests.conftest import HANDLERS, worker_argv
from tests.reliability.checks import (
    WEBHOOK_RETRY_ENV,
    assert_projections_match_rebuild,
    assert_recovered,
    assert_webhooks_delivered,
    completed_steps,
    gap_free,
    ledger_count,
    subscribe,
)
from tests.reliability.conftest import TAG_VARIABLE, Served, free_port, tagged_processes, wait_for_no_process
from tests.reliability.held import STEPS, holder, register, release_and_wait, start_held
from tests.webhook_receiver import Receiver

# A runtime must be gone this soon after its engine (issue: "a few seconds").
ORPHAN_SECONDS = 5.0


def test_a_runtime_sigkilled_mid_step_is_retried_and_nothing_ran_twice(
    database_url: str, control_only: Durascope, process_tag: str, receiver: Receiver, tmp_path: Path
) -> None:
    register(control_only, process_tag)
    subscribe(control_only, receiver, "/runtime")
    served = Served(
        database_url, process_tag, tmp_path / "serve.log", **WEBHOOK_RETRY_ENV, DURASCOPE_WORKER_CONCURRENCY="2"
    )
    try:
        arns = start_held(served.url, tmp_path, ["a", "b"])
        before = completed_steps(control_only, arns)
        victim = holder(tmp_path, "a")
        assert victim in tagged_processes(process_tag)
        os.kill(victim, signal.SIGKILL)
        release_and_wait(control_only, tmp_path, arns)
        assert_webhooks_delivered(receiver, "/runtime", list(arns.values()))
    finally:
        served.stop()
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    # The killed step never completed, so it ran to its end exactly once: on the retry.
    assert all(ledger_count(tmp_path, name, f"step-{i}") == 1 for name in arns for i in range(STEPS))
    errors = [
        e["InvocationCompletedDetails"]["Error"]["Payload"]
        for e in control_only.history(arns["a"])
        if e["EventType"] == "InvocationCompleted" and "Error" in e["InvocationCompletedDetails"]
    ]
    assert [e["ErrorType"] for e in errors] == ["Runtime.ExitError"]
    assert "signal SIGKILL" in errors[0]["ErrorMessage"]
    wait_for_no_process(process_tag, 10, "after serve stopped")


def test_no_worker_runtime_outlives_a_sigkilled_engine(
    database_url: str, control_only: Durascope, process_tag: str, tmp_path: Path, receiver: Receiver
) -> None:
    """SIGKILL of serve during steps: its runtimes stop, its successor finishes the steps,
    and every status change is delivered."""
    subscribe(control_only, receiver, "/steps")
    arns = _sigkill_engine_mid_step(
        database_url,
        control_only,
        process_tag,
        tmp_path,
        "workers",
        DURASCOPE_WORKER_CONCURRENCY="3",
        **WEBHOOK_RETRY_ENV,
    )
    assert_webhooks_delivered(receiver, "/steps", list(arns.values()))


# The child interpreters never touch the database: one store shows it.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_child_interpreter_outlives_a_sigkilled_engine(
    database_url: str, control_only: Durascope, process_tag: str, tmp_path: Path
) -> None:
    _sigkill_engine_mid_step(
        database_url, control_only, process_tag, tmp_path, "in-process", DURASCOPE_INVOKER_PROCESSES="1"
    )


def _sigkill_engine_mid_step(
    database_url: str, control_only: Durascope, process_tag: str, tmp_path: Path, invoker: str, **env: str
) -> dict[str, str]:
    register(control_only, process_tag)
    args = ("--invoker", invoker)
    env["DURASCOPE_LEASE_SECONDS"] = "1"
    first = Served(database_url, process_tag, tmp_path / "serve.log", *args, **env)
    try:
        arns = start_held(first.url, tmp_path, ["a", "b", "c"])
        before = completed_steps(control_only, arns)
        runtimes = {holder(tmp_path, n) for n in arns}
        assert runtimes <= set(tagged_processes(process_tag))
    finally:
        first.kill()
    # Each runtime was mid-step: none may wait forever for an engine that is gone.
    wait_for_no_process(process_tag, ORPHAN_SECONDS, "runtimes outlived their SIGKILLed engine")
    for name in arns:
        (tmp_path / f"{name}.holding").unlink()
    second = Served(database_url, process_tag, tmp_path / "serve.log", *args, **env)
    try:
        release_and_wait(control_only, tmp_path, arns)
    finally:
        second.stop()
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    wait_for_no_process(process_tag, 10, "after serve stopped")
    return arns


_ENGINE_WITHOUT_LOCAL_WORKERS = """
import signal, sys, threading
from recorder.config import Settings
from viewer.server import build_server
server, ds = build_server(Settings.from_env(), port=int(sys.argv[1]), invoker="workers", local_workers=False)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
ds.close()
"""


# The link between a worker host and its engine does not touch the database: one store shows it.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_remote_workers_runtimes_stop_when_its_engine_dies(
    database_url: str, control_only: Durascope, process_tag: str, tmp_path: Path
) -> None:
    """The runtime's parent is the worker host, which outlives the engine on purpose (it
    waits for the engine to come back); the host stops the runtimes working for it."""
    register(control_only, process_tag)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DURASCOPE_DATABASE_URL": database_url, TAG_VARIABLE: process_tag}
    log = (tmp_path / "engine.log").open("ab")
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE_WITHOUT_LOCAL_WORKERS, str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _answers(url), 60, "the engine did not start")
        worker = subprocess.Popen(worker_argv(url, "ledgered"), env=env, stdout=log, stderr=subprocess.STDOUT)
        arns = start_held(url, tmp_path, ["a"])
        runtime = holder(tmp_path, "a")
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        wait_until(
            lambda: runtime not in tagged_processes(process_tag),
            ORPHAN_SECONDS,
            "the remote runtime outlived its engine",
        )
        assert worker.poll() is None, "the worker host itself keeps waiting for its engine"
    finally:
        for proc in (engine, worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert control_only.describe(arns["a"]).status == "RUNNING"
    wait_for_no_process(process_tag, 10, "after the worker stopped")


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{url}/durascope/runtime/functions", timeout=2).read()
        return True
    except (urllib.error.URLError, OSError):
        return False


def test_crashes_that_made_progress_do_not_use_up_the_attempts(database_url: str, tmp_path: Path) -> None:
    """DURASCOPE_MAX_INVOCATION_ATTEMPTS counts consecutive crashes that made no progress:
    three crashes, the last two each after a new step was checkpointed, do not fail an
    execution allowed two; two crashes in a row without progress do."""
    with Durascope.open(
        database_url, invoker_processes=1, max_invocation_attempts=2, invocation_retry_seconds=0.05
    ) as ds:
        ds.register_function("crashy", "th_faults.progress_then_crash", code_dir=HANDLERS)
        # One after the other: a crash kills the one child interpreter, and every invocation in it.
        progressing = ds.start("crashy", json.dumps({"ledger": str(tmp_path), "name": "p", "steps": 3}))
        assert ds.wait(progressing, 60).status == "SUCCEEDED"
        stuck = ds.start("crashy", json.dumps({"ledger": str(tmp_path), "name": "s", "steps": 3, "always": True}))
        assert ds.wait(stuck, 60).status == "FAILED"
        crashes = {
            arn: sum(
                e["EventType"] == "InvocationCompleted" and "Runtime.ExitError" in json.dumps(e)
                for e in ds.history(arn)
            )
            for arn in (progressing, stuck)
        }
        assert crashes == {progressing: 3, stuck: 2}
        assert all(gap_free(ds.history(arn)) for arn in crashes)
        assert_projections_match_rebuild(ds)
