"""``durascope demo``: the one-command demo works from a clean directory, with and without the server.

The subprocess tests run the real console command from an empty working directory (nothing
but the installed package), the way a fresh clone would; the in-process test runs the whole
scenario list on SQLite and PostgreSQL and checks every execution ends as planned.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from sqlalchemy import select

from recorder.api import Durascope
from recorder.demo import SCENARIOS, plan_batch, run_batch
from recorder.store.models import Execution
from samples.catalog import CATALOG

CALLBACK_ENDS = {"CallbackSucceeded", "CallbackFailed", "CallbackTimedOut"}


def durascope_command() -> list[str]:
    """The installed ``durascope`` script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "durascope"
    return [str(script)] if script.exists() else [sys.executable, "-m", "recorder.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executions(database_url: str) -> list[Execution]:
    with Durascope.open(database_url, run_engine=False) as ds, ds.db.read() as s:
        return list(s.scalars(select(Execution)).all())


def waiting_on_callback(ds: Durascope, arn: str) -> bool:
    h = ds.history(arn)
    ended = {e["Id"] for e in h if e["EventType"] in CALLBACK_ENDS}
    return any(e["EventType"] == "CallbackStarted" and e["Id"] not in ended for e in h)


def test_plan_is_seeded_and_small_batches_show_every_kind_of_outcome() -> None:
    first = plan_batch(12, seed=5, run_id="abc123")
    assert first == plan_batch(12, seed=5, run_id="abc123")
    assert plan_batch(12, seed=6, run_id="abc123") != first
    assert {"SUCCEEDED", "FAILED", "RUNNING", "TIMED_OUT"} <= {p.expect for p in first}
    assert {p.expect for p in plan_batch(len(SCENARIOS), 1, "x")} == {
        "SUCCEEDED",
        "FAILED",
        "RUNNING",
        "TIMED_OUT",
        "STOPPED",
    }
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", p.name) for p in plan_batch(100, 1, "abcdef"))
    assert {p.function for p in plan_batch(len(SCENARIOS), 1, "x")} == {s.name for s in CATALOG}


def test_every_scenario_ends_as_planned(database_url: str) -> None:
    lines: list[str] = []
    with Durascope.open(database_url) as ds:
        outcome = run_batch(ds, len(SCENARIOS), seed=11, timeout=120, echo=lines.append)
    assert outcome.ok, outcome.summary()
    assert outcome.statuses["STOPPED"] == 1 and outcome.statuses["TIMED_OUT"] == 1
    assert lines and lines[0].startswith("demo run ")


def test_demo_no_serve_from_a_clean_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    work = tmp_path / "clean"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURASCOPE_")}
    out = tmp_path / "demo.out"
    with out.open("w") as f:
        proc = subprocess.run(
            [*durascope_command(), "--database-url", url, "demo", "--no-serve", "--executions", "12", "--seed", "5"],
            check=False,
            cwd=work,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=240,
        )
    text = out.read_text()
    assert proc.returncode == 0, text
    assert re.search(r"demo run \w+: 12 executions", text) and "batch settled" in text, text

    rows = executions(url)
    assert len(rows) == 12
    statuses = {r.status for r in rows}
    assert {"SUCCEEDED", "FAILED", "RUNNING"} <= statuses, statuses
    with Durascope.open(url, run_engine=False) as ds:
        assert {f.name for f in ds.control.list_functions()} == {s.name for s in CATALOG}
        running = [r for r in rows if r.status == "RUNNING"]
        assert any(waiting_on_callback(ds, r.arn) for r in running)

    # A second run on the same database adds a new batch (names carry a run id).
    with out.open("w") as f:
        again = subprocess.run(
            [*durascope_command(), "--database-url", url, "demo", "--no-serve", "--executions", "3", "--seed", "5"],
            check=False,
            cwd=work,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=240,
        )
    assert again.returncode == 0, out.read_text()
    assert len(executions(url)) == 15


def _wait_for_port(proc: subprocess.Popen[Any], port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "demo exited before serving"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} did not answer in time")


def _readme_boto3_snippet() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "boto3.client(" in block)


def test_demo_serves_what_serve_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The demo answers the Lambda API, its printed AWS CLI hint works as printed on a machine
    with no AWS configuration, the README's boto3 snippet works against it as written, and a
    webhook added while it runs is delivered (the demo runs the dispatcher, as serve does)."""
    from tests.webhook_receiver import Receiver

    port = free_port()
    url = f"sqlite:///{tmp_path}/served.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURASCOPE_")}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*durascope_command(), "--database-url", url, "demo", "--port", str(port), "--executions", "8", "--seed", "2"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    receiver = Receiver()
    try:
        _wait_for_port(proc, port, time.monotonic() + 60)
        client = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        deadline = time.monotonic() + 30
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not found:
            found = client.list_durable_executions_by_function(FunctionName="orders")["DurableExecutions"]
            if not found:
                time.sleep(0.1)
        assert found, "no orders executions listed"
        assert found[0]["DurableExecutionName"].startswith("order-000-")
        approvals = client.list_durable_executions_by_function(FunctionName="orders-approval")["DurableExecutions"]
        assert approvals

        # The hint, run as printed by a shell with no AWS configuration at all.
        deadline = time.monotonic() + 30
        while "try: " not in (tmp_path / "serve.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        hint = (tmp_path / "serve.log").read_text().split("try: ", 1)[1].splitlines()[0]
        bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        bare.update(
            HOME=str(tmp_path),
            AWS_CONFIG_FILE=str(tmp_path / "none"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        )
        ran = subprocess.run(["bash", "-c", hint], env=bare, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["DurableExecutions"]

        # A webhook added while the demo runs is delivered.
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/webhooks",
            method="POST",
            data=json.dumps({"url": receiver.url("/demo"), "statuses": ["SUCCEEDED"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            receiver.secrets["/demo"] = json.loads(resp.read())["secret"]

        # The README's snippet, as written (only the port differs).
        scope: dict[str, Any] = {}
        exec(_readme_boto3_snippet().replace("127.0.0.1:8000", f"127.0.0.1:{port}"), scope)
        assert scope["events"][-1]["EventType"] == "ExecutionSucceeded"
        deadline = time.monotonic() + 30
        while not any(e["detail"]["durableExecutionArn"] == scope["arn"] for _, e in receiver.at("/demo")):
            assert time.monotonic() < deadline, "the webhook was not delivered"
            time.sleep(0.1)
        assert receiver.bad == []

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        receiver.down()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert f"http://127.0.0.1:{port}" in text and "demo run" in text, text
