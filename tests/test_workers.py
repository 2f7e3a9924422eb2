"""Handlers in worker processes (awslambdaric), reached over HTTP, the way Lambda runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.queries import execution_logs
from tests.conftest import HANDLERS, remote_worker
from viewer.server import build_server


class Served:
    def __init__(self, ds: Durascope, url: str) -> None:
        self.ds = ds
        self.url = url


def _serve(database_url: str, local_workers: bool = True) -> Iterator[Served]:
    settings = Settings.from_env(database_url=database_url, worker_concurrency=1)
    server, ds = build_server(settings, port=0, invoker="workers", local_workers=local_workers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(ds, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


@pytest.fixture
def served(database_url: str) -> Iterator[Served]:
    yield from _serve(database_url)


def _register(ds: Durascope, name: str, handler: str, **kw: Any) -> None:
    ds.register_function(name, handler, code_dir=HANDLERS, **kw)


def _errors(ds: Durascope, arn: str) -> list[str]:
    return [
        e["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorType"]
        for e in ds.history(arn)
        if e["EventType"] == "InvocationCompleted" and "Error" in e["InvocationCompletedDetails"]
    ]


def test_handler_runs_in_its_own_process_with_its_environment(served: Served) -> None:
    ds = served.ds
    _register(ds, "whoami", "th_workers.whoami", env={"MODE": "isolated"})
    arn = ds.start("whoami", "{}")
    done = ds.wait(arn, 60)
    assert done.status == "SUCCEEDED", done.error
    import json

    result = json.loads(done.result or "{}")
    assert result["pid"] != os.getpid()
    assert result["mode"] == "isolated" and result["fn"] == "whoami"
    assert "MODE" not in os.environ
    # Output of the runtime process is stored with the invocation.
    messages = [e.message for e in execution_logs(ds.db, arn)]
    assert any("hello from pid" in m for m in messages), messages
    # Warm: a second execution reuses the same runtime process.
    again = json.loads(ds.wait(ds.start("whoami", "{}"), 60).result or "{}")
    assert again["pid"] == result["pid"]


def test_every_line_a_runtime_prints_is_stored_with_its_invocation(served: Served) -> None:
    # The lines are one write of 50 KB right before the handler returns: all of them are
    # still in the pipe when the runtime posts its response, so they must be read before
    # the invocation is reported, not guessed at with a pause. The last has no newline:
    # it still belongs to this invocation, not to the next one the warm runtime runs.
    ds = served.ds
    _register(ds, "chatty", "th_workers.chatty")
    expected = [f"line {i:04d}" for i in range(4900)] + ["the end"]
    for _ in range(2):
        arn = ds.start("chatty", '{"lines": 4900}')
        done = ds.wait(arn, 60)
        assert done.status == "SUCCEEDED", done.error
        said = [e.message for e in execution_logs(ds.db, arn) if e.level == "STDOUT"]
        assert said == expected


@pytest.mark.parametrize("how,exit_text", [("exit", "status 3"), ("sigkill", "signal SIGKILL")])
def test_a_runtime_that_dies_mid_invocation_is_retried(
    served: Served, tmp_path: Path, how: str, exit_text: str
) -> None:
    ds = served.ds
    _register(ds, "dies", "th_workers.dies_once")
    arn = ds.start("dies", f'{{"marker": "{tmp_path / "m"}", "how": "{how}"}}')
    done = ds.wait(arn, 60)
    assert done.status == "SUCCEEDED" and done.result == '"survived"'
    assert _errors(ds, arn) == ["Runtime.ExitError"]
    failed = next(e for e in ds.history(arn) if "Error" in e.get("InvocationCompletedDetails", {}))
    assert exit_text in failed["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorMessage"]
    # The step completed before the crash did not run again.
    assert [e["Name"] for e in ds.history(arn) if e["EventType"] == "StepSucceeded"] == ["before", "crash"]


def test_a_runtime_over_its_timeout_is_killed_and_retried(served: Served, tmp_path: Path) -> None:
    ds = served.ds
    _register(ds, "hangs", "th_workers.hangs_once", timeout=2)
    arn = ds.start("hangs", f'{{"marker": "{tmp_path / "m"}"}}')
    t0 = time.monotonic()
    done = ds.wait(arn, 60)
    assert done.status == "SUCCEEDED" and done.result == '"fast this time"'
    assert _errors(ds, arn) == ["Sandbox.Timedout"]
    assert time.monotonic() - t0 < 20


def test_a_remote_worker_over_http(database_url: str, tmp_path: Path) -> None:
    for served in _serve(database_url, local_workers=False):
        ds = served.ds
        _register(ds, "whoami", "th_workers.whoami", env={"MODE": "remote"})
        with remote_worker(served.url, "whoami", log=tmp_path / "worker.log") as worker:
            done = ds.wait(ds.start("whoami", "{}"), 60)
            assert done.status == "SUCCEEDED" and '"mode": "remote"' in (done.result or "")
        assert worker.returncode is not None


def test_worker_refuses_unknown_functions(served: Served) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "worker", "--engine", served.url, "--function", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "has no function nope" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "worker", "--engine", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "cannot reach the engine" in proc.stderr


@pytest.mark.parametrize("path", ["/durascope/runtime/whoami/next?wait=nan", "/durascope/runtime/watch?wait=inf"])
def test_the_worker_endpoints_refuse_a_wait_that_is_not_a_number(served: Served, path: str) -> None:
    import http.client

    _register(served.ds, "whoami", "th_workers.whoami")
    conn = http.client.HTTPConnection("127.0.0.1", int(served.url.rsplit(":", 1)[1]), timeout=30)
    conn.request("POST" if "watch" in path else "GET", path, body=b'{"RequestIds": ["x"]}' if "watch" in path else None)
    resp = conn.getresponse()
    assert resp.status == 400 and b"wait must be a number of seconds" in resp.read()
