"""The ``durascope`` command, run as a user runs it (a subprocess per command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANDLERS


def run(database_url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DURASCOPE_DATABASE_URL": database_url}
    proc = subprocess.run([sys.executable, "-m", "recorder.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_register_invoke_history_logs(database_url: str, tmp_path: Path) -> None:
    out = run(database_url, "functions", "register", "logs", "th_basic.logs_things", "--code-dir", HANDLERS,
              "--env", "MODE=test", "--execution-timeout", "120", "--retention-days", "3")
    assert out.stdout.strip() == "arn:aws:lambda:us-east-1:123456789012:function:logs"
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    listed = json.loads(run(database_url, "functions", "list", "--json").stdout)
    assert {f["FunctionName"]: f["Handler"] for f in listed} == {"add-one": "th_basic:add_one",
                                                                 "logs": "th_basic.logs_things"}
    assert next(f for f in listed if f["FunctionName"] == "logs")["Environment"] == {"MODE": "test"}

    waited = run(database_url, "invoke", "add-one", "--payload", '{"a": 41}', "--name", "answer", "--wait")
    lines = waited.stdout.strip().split("\n", 1)
    arn = lines[0]
    assert arn.endswith("/durable-execution/answer/" + arn.rsplit("/", 1)[1])
    outcome = json.loads(lines[1])
    assert outcome == {"DurableExecutionArn": arn, "Status": "SUCCEEDED", "Result": "42"}

    history = json.loads(run(database_url, "history", arn).stdout)["Events"]
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "StepStarted", "StepSucceeded",
                                                 "InvocationCompleted", "ExecutionSucceeded"]
    assert history[0]["ExecutionStartedDetails"]["Input"]["Payload"] == '{"a": 41}'
    no_data = json.loads(run(database_url, "history", arn, "--no-data").stdout)["Events"]
    assert no_data[0]["ExecutionStartedDetails"]["Input"] == {"Truncated": True}

    listed_execs = json.loads(run(database_url, "executions", "--function", "add-one", "--json").stdout)
    assert [e["DurableExecutionArn"] for e in listed_execs] == [arn]
    assert json.loads(run(database_url, "executions", "--status", "FAILED", "--json").stdout) == []

    queued = run(database_url, "invoke", "logs")
    logs_arn = queued.stdout.strip()
    assert "queued" in queued.stderr
    run(database_url, "invoke", "logs", "--name", "logged", "--wait")
    logged_arn = json.loads(run(database_url, "executions", "--function", "logs", "--status", "SUCCEEDED",
                                "--json").stdout)[0]["DurableExecutionArn"]
    assert logged_arn != logs_arn
    text_logs = run(database_url, "logs", logged_arn).stdout
    assert "printed line" in text_logs and "context logger line" in text_logs
    warnings = [json.loads(x) for x in run(database_url, "logs", logged_arn, "--level", "WARNING", "--json").stdout.splitlines()]
    assert [w["Message"] for w in warnings] == ["step logger line <b>markup</b>"]


@pytest.mark.parametrize("args,message", [
    (("invoke", "missing"), "ResourceNotFoundException: Function not found"),
    (("invoke", "x", "--payload", "{nope"), "not valid JSON"),
    (("history", "arn:aws:lambda:bad"), "not a valid durable execution ARN"),
    (("functions", "register", "f", "nodots"), "must be written pkg.module.function"),
    (("functions", "register", "bad name!", "a.b"), "Function name must match"),
    (("functions", "register", "f", "a.b", "--env", "NOEQUALS"), "expected K=V"),
])
def test_bad_input_is_a_readable_error(database_url: str, args: tuple[str, ...], message: str) -> None:
    proc = run(database_url, *args, ok=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rebuild_projections_command(database_url: str) -> None:
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    run(database_url, "invoke", "add-one", "--wait")
    out = run(database_url, "db", "rebuild-projections")
    assert out.stdout.startswith("rebuilt projections from 6 log records")  # 5 history events + 1 engine record


def test_db_upgrade_and_current(database_url: str) -> None:
    assert "schema at revision" in run(database_url, "db", "upgrade").stdout
    current = run(database_url, "db", "current").stdout
    rev = current.split("database: ")[1].split(";")[0]
    assert current.strip().endswith(f"needed: {rev}")
