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
    proc = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_register_invoke_history_logs(database_url: str, tmp_path: Path) -> None:
    out = run(
        database_url,
        "functions",
        "register",
        "logs",
        "th_basic.logs_things",
        "--code-dir",
        HANDLERS,
        "--env",
        "MODE=test",
        "--execution-timeout",
        "120",
        "--retention-days",
        "3",
    )
    assert out.stdout.strip() == "arn:aws:lambda:us-east-1:123456789012:function:logs"
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    listed = json.loads(run(database_url, "functions", "list", "--json").stdout)
    assert {f["FunctionName"]: f["Handler"] for f in listed} == {
        "add-one": "th_basic:add_one",
        "logs": "th_basic.logs_things",
    }
    assert next(f for f in listed if f["FunctionName"] == "logs")["Environment"] == {"MODE": "test"}

    waited = run(database_url, "invoke", "add-one", "--payload", '{"a": 41}', "--name", "answer", "--wait")
    lines = waited.stdout.strip().split("\n", 1)
    arn = lines[0]
    assert arn.endswith("/durable-execution/answer/" + arn.rsplit("/", 1)[1])
    outcome = json.loads(lines[1])
    assert outcome == {"DurableExecutionArn": arn, "Status": "SUCCEEDED", "Result": "42"}

    history = json.loads(run(database_url, "history", arn).stdout)["Events"]
    assert [e["EventType"] for e in history] == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
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
    logged_arn = json.loads(
        run(database_url, "executions", "--function", "logs", "--status", "SUCCEEDED", "--json").stdout
    )[0]["DurableExecutionArn"]
    assert logged_arn != logs_arn
    text_logs = run(database_url, "logs", logged_arn).stdout
    assert "printed line" in text_logs and "context logger line" in text_logs
    warnings = [
        json.loads(x) for x in run(database_url, "logs", logged_arn, "--level", "WARNING", "--json").stdout.splitlines()
    ]
    assert [w["Message"] for w in warnings] == ["step logger line <b>markup</b>"]


@pytest.mark.parametrize(
    "args,message",
    [
        (("invoke", "missing"), "ResourceNotFoundException: Function not found"),
        (("invoke", "x", "--payload", "{nope"), "not valid JSON"),
        (("history", "arn:aws:lambda:bad"), "not a valid durable execution ARN"),
        (("functions", "register", "f", "nodots"), "must be written pkg.module.function"),
        (("functions", "register", "bad name!", "a.b"), "Function name must match"),
        (("functions", "register", "f", "a.b", "--env", "NOEQUALS"), "expected K=V"),
    ],
)
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


# --- the commands SAM CLI has, and more ------------------------------------------------------


def _ds(database_url: str):
    from recorder.api import Durascope

    return Durascope.open(database_url)


def _callback_id(ds, arn: str) -> str:
    ds.wait_for(lambda: any(e["EventType"] == "CallbackStarted" for e in ds.history(arn)), 30)
    return next(
        e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn) if e["EventType"] == "CallbackStarted"
    )


def test_get_says_how_it_ended_or_what_it_waits_on(database_url: str) -> None:
    from tests.conftest import register

    with _ds(database_url) as ds:
        register(ds, "approval", "th_basic:approval")
        register(ds, "doomed", "th_basic:always_fails")
        waiting = ds.start("approval", json.dumps({"timeout": 300}), name="asks")
        callback_id = _callback_id(ds, waiting)
        failed = ds.start("doomed", "{}", name="doomed")
        ds.wait(failed, 30)
        text = run(database_url, "get", waiting).stdout
        assert "status       RUNNING" in text and "ended        still running" in text
        assert "waiting on   callback 'approval create callback id', due " in text
        assert f"callback id {callback_id}" in text
        data = json.loads(run(database_url, "get", waiting, "--output", "json").stdout)
        assert data["Status"] == "RUNNING" and {w["Kind"] for w in data["WaitingOn"]} == {
            "callback",
            "execution-timeout",
        }
        text = run(database_url, "get", failed).stdout
        assert (
            "status       FAILED" in text
            and "error        aws_durable_execution_sdk_python.exceptions.StepError: never works" in text
        )
        assert "failing      step 'doomed' after 2 attempts" in text
        data = json.loads(run(database_url, "get", failed, "-O", "json").stdout)
        assert data["Error"]["ErrorMessage"] == "never works" and data["FailingOperation"]["Attempts"] == 2
        ds.stop(waiting)


def test_callbacks_pause_resume_delete(database_url: str, tmp_path: Path) -> None:
    from tests.conftest import register

    with _ds(database_url) as ds:
        register(ds, "approval", "th_basic:approval")
        register(ds, "waits", "th_basic:waits")
        yes = ds.start("approval", json.dumps({"timeout": 300, "heartbeat": 60}), name="yes")
        no = ds.start("approval", json.dumps({"timeout": 300}), name="no")
        yes_id, no_id = _callback_id(ds, yes), _callback_id(ds, no)
        answer = tmp_path / "answer.json"
        answer.write_text('{"approved": true, "by": "cli"}')
        bad = run(database_url, "callback", "succeed", yes_id, "--result", "{nope", ok=False)
        assert bad.returncode == 2 and "not valid JSON" in bad.stderr and ds.describe(yes).status == "RUNNING"
        assert run(database_url, "callback", "heartbeat", yes_id).stdout.strip() == "heartbeat sent"
        run(database_url, "callback", "succeed", yes_id, "--result", f"@{answer}")
        # The handler returns the callback's result as it came (JSON text).
        assert json.loads(json.loads(ds.wait(yes, 30).result or "null")) == {"approved": True, "by": "cli"}
        run(database_url, "callback", "fail", no_id, "--error-type", "Denied", "--error-message", "over budget")
        assert ds.wait(no, 30).error["ErrorMessage"] == "over budget"
        gone = run(database_url, "callback", "succeed", "QUJD", ok=False)
        assert gone.returncode == 1 and "Traceback" not in gone.stderr and len(gone.stderr.strip().splitlines()) == 1

        long = ds.start("waits", json.dumps({"seconds": 3600}), name="long")
        ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(long)), 30)
        assert "paused" in run(database_url, "pause", long, "--reason", "maintenance").stdout
        assert ds.describe(long).status == "PAUSED"
        assert "resumed" in run(database_url, "resume", long).stdout and ds.describe(long).status == "RUNNING"
        refused = run(database_url, "delete", long, "--yes", ok=False)
        assert refused.returncode == 1 and "stop it before deleting it" in refused.stderr
        run(database_url, "stop", long)
        ds.wait(long, 30)
        assert run(database_url, "delete", long, "--yes").stdout.strip() == f"deleted {long}"
        missing = run(database_url, "get", long, ok=False)
        assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr


def test_invoke_payload_from_a_file_and_wait_fails_when_the_execution_fails(database_url: str, tmp_path: Path) -> None:
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    run(database_url, "functions", "register", "doomed", "th_basic:always_fails", "--code-dir", HANDLERS)
    payload = tmp_path / "in.json"
    payload.write_text('{"a": 9}')
    done = run(database_url, "invoke", "add-one", "--payload", f"@{payload}", "--wait")
    assert json.loads(done.stdout.split("\n", 1)[1])["Result"] == "10"
    missing = run(database_url, "invoke", "add-one", "--payload", f"@{tmp_path}/none.json", ok=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    failed = run(database_url, "invoke", "doomed", "--wait", ok=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().endswith("the execution ended FAILED: StepError: never works")
    assert json.loads(failed.stdout.split("\n", 1)[1])["Status"] == "FAILED"


def test_executions_filters_and_columns(database_url: str) -> None:
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    run(database_url, "functions", "register", "doomed", "th_basic:always_fails", "--code-dir", HANDLERS)
    run(database_url, "invoke", "add-one", "--name", "first", "--wait")
    run(database_url, "invoke", "doomed", "--name", "broken", "--wait", ok=False)
    table = run(database_url, "executions").stdout.splitlines()
    assert table[0].split() == ["STARTED", "STATUS", "DURATION", "FUNCTION", "NAME", "ERROR"]
    broken = next(line for line in table if "broken" in line)
    assert "FAILED" in broken and broken.rstrip().endswith("StepError: never works") and " s " in broken
    assert [
        e["DurableExecutionName"]
        for e in json.loads(run(database_url, "executions", "--name", "firs", "--output", "json").stdout)
    ] == ["first"]
    assert json.loads(run(database_url, "executions", "--function", "doomed", "-O", "json").stdout)[0]["Error"]
    assert run(database_url, "executions", "--since", "1m", "--output", "json").stdout.count("DurableExecutionArn") == 2
    assert (
        run(database_url, "executions", "--since", "2000-01-01T00:00:00", "--status", "STOPPED").stdout.strip()
        == "no executions match"
    )
    assert json.loads(run(database_url, "functions", "list", "--output", "json").stdout)[0]["FunctionName"]


def test_register_imports_the_handler_first(database_url: str, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken_flow.py").write_text("import not_installed_anywhere\n")
    (code / "typo_flow.py").write_text("def handler(event, context)\n    return 1\n")
    refused = run(
        database_url, "functions", "register", "broken", "broken_flow.handler", "--code-dir", str(code), ok=False
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "does not import" in refused.stderr and "No module named 'not_installed_anywhere'" in refused.stderr
    assert "broken_flow.py:1" in refused.stderr
    typo = run(database_url, "functions", "register", "typo", "typo_flow:handler", "--code-dir", str(code), ok=False)
    assert "SyntaxError" in typo.stderr and "typo_flow.py:1" in typo.stderr
    missing = run(database_url, "functions", "register", "gone", "th_basic.nope", "--code-dir", HANDLERS, ok=False)
    assert "AttributeError" in missing.stderr
    assert json.loads(run(database_url, "functions", "list", "-O", "json").stdout) == []
    run(database_url, "functions", "register", "broken", "broken_flow.handler", "--code-dir", str(code), "--no-check")
    assert [f["FunctionName"] for f in json.loads(run(database_url, "functions", "list", "-O", "json").stdout)] == [
        "broken"
    ]


def test_export_writes_what_the_name_says_or_refuses(database_url: str, tmp_path: Path) -> None:
    import zipfile

    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    arn = run(database_url, "invoke", "add-one", "--wait").stdout.splitlines()[0]
    out = run(database_url, "export", arn, "-o", str(tmp_path / "run.zip"))
    assert out.stdout.strip() == f"wrote {tmp_path / 'run.zip'} (zip)" and zipfile.is_zipfile(tmp_path / "run.zip")
    imported = run(
        database_url.replace("durascope.db", "other.db") if database_url.startswith("sqlite") else database_url,
        "import",
        str(tmp_path / "run.zip"),
        ok=False,
    )
    if database_url.startswith("sqlite"):
        assert imported.stdout.startswith("imported 1 execution\n")
    for args, needle in (
        (("-o", str(tmp_path / "run.txt")), "cannot tell the format from 'run.txt'"),
        (("-o", str(tmp_path / "run.json"), "--format", "csv"), "'run.json' says json, --format says csv"),
    ):
        refused = run(database_url, "export", arn, *args, ok=False)
        assert refused.returncode == 2 and needle in refused.stderr, refused.stderr
    assert not (tmp_path / "run.txt").exists()
    bulk = run(database_url, "export", "--function", "add-one", "-o", str(tmp_path / "all.zip"))
    assert bulk.stdout.strip() == f"wrote 1 execution to {tmp_path / 'all.zip'}"
    assert run(database_url, "export", "-o", str(tmp_path / "all.csv"), ok=False).returncode == 2


def test_logs_with_nothing_to_show_say_so(database_url: str) -> None:
    run(database_url, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    arn = run(database_url, "invoke", "add-one", "--wait").stdout.splitlines()[0]
    quiet = run(database_url, "logs", arn)
    assert quiet.stdout == "" and quiet.stderr.strip() == "this execution has logged nothing"


def test_pull_from_a_local_durascope_needs_no_aws_configuration(database_url: str, tmp_path: Path) -> None:
    import threading

    from recorder.config import Settings
    from viewer.server import build_server

    source = f"sqlite:///{tmp_path}/source.db"
    run(source, "functions", "register", "add-one", "th_basic:add_one", "--code-dir", HANDLERS)
    arn = run(source, "invoke", "add-one", "--wait").stdout.splitlines()[0]
    server, served = build_server(Settings.from_env(database_url=source), port=0, run_engine=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare.update(HOME=str(tmp_path), DURASCOPE_DATABASE_URL=database_url)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "recorder.cli",
                "pull",
                "--endpoint-url",
                f"http://127.0.0.1:{server.server_port}",
                "--function",
                "add-one",
            ],
            env=bare,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
        served.close()
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "pulled 1 execution; 0 already here"
    page = json.loads(run(database_url, "get", arn, "-O", "json").stdout)
    assert page["Status"] == "SUCCEEDED"
    from recorder.api import Durascope
    from recorder.queries import execution_origin

    with Durascope.open(database_url, run_engine=False) as target:
        assert (
            execution_origin(target.db, arn.rsplit("/", 1)[1]) == f"pulled from http://127.0.0.1:{server.server_port}"
        )


@pytest.mark.parametrize(
    "url,needle",
    [
        ("nonsense", "is not a database URL"),
        ("mysql://x@y/z", "unsupported database 'mysql'"),
        (
            "postgresql+psycopg://nobody@127.0.0.1:1/x",
            "cannot use the database postgresql+psycopg://nobody@127.0.0.1:1/x: connection failed",
        ),
        (
            "postgresql+psycopg://postgres:secret@127.0.0.1:5432/no_such_db_here",
            'database "no_such_db_here" does not exist',
        ),
        ("sqlite:////proc/durascope.db", "cannot use the database sqlite:////proc/durascope.db: unable to open"),
    ],
)
@pytest.mark.parametrize("command", [("executions",), ("functions", "list"), ("webhooks", "list")])
def test_a_database_that_cannot_be_used_is_one_line(url: str, needle: str, command: tuple[str, ...]) -> None:
    proc = run(url, *command, ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert "secret" not in proc.stderr  # the password stays hidden


def test_a_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "not-there"
    proc = run(f"sqlite:///{folder}/durascope.db", "functions", "list", ok=False)
    assert proc.returncode == 1 and f"the folder {folder} does not exist" in proc.stderr
    assert not folder.exists()
