"""Export, import and pull of histories; hostile files are refused and change nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from recorder import transfer
from recorder.api import Durascope
from recorder.config import Settings
from tests.conftest import register
from tests.test_engine import callback_id
from viewer.server import build_server


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Durascope, list[str]]]:
    """A SQLite store with a few finished executions of different shapes."""
    ds = Durascope.open(f"sqlite:///{tmp_path}/source.db")
    register(ds, "flaky", "th_basic:flaky")
    register(ds, "doomed", "th_basic:always_fails")
    register(ds, "approval", "th_basic:approval")
    arns = [ds.start("flaky", json.dumps({"key": str(uuid.uuid4())})), ds.start("doomed", "{}")]
    waiting = ds.start("approval", "{}")
    ds.callback_success(callback_id(ds, waiting), b'"<b>ok</b>"')
    arns.append(waiting)
    for arn in arns:
        ds.wait(arn, 30)
    yield ds, arns
    ds.close()


def _counts(ds: Durascope) -> tuple[int, int]:
    with ds.db.read() as s:
        return (s.execute(text("SELECT COUNT(*) FROM events")).scalar() or 0,
                s.execute(text("SELECT COUNT(*) FROM executions")).scalar() or 0)


def _cli(database_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DURASCOPE_DATABASE_URL": database_url, **(env or {})})


def test_export_import_export_gives_the_same_bytes(source: tuple[Durascope, list[str]], database_url: str,
                                                   tmp_path: Path) -> None:
    src, arns = source
    target = Durascope.open(database_url, run_engine=False)
    try:
        for arn in arns:
            first = io.StringIO()
            transfer.write_json(src.db, arn, first)
            path = tmp_path / f"{uuid.uuid4()}.json"
            path.write_text(first.getvalue())
            assert transfer.import_histories(target.db, transfer.read_import_file(path)) == [arn]
            again = io.StringIO()
            transfer.write_json(target.db, arn, again)
            assert again.getvalue() == first.getvalue()
            imported = target.describe(arn)
            assert imported.status == src.describe(arn).status and imported.result == src.describe(arn).result
        with target.db.read() as s:
            assert s.execute(text("SELECT COUNT(*) FROM timers")).scalar() == 0, "imported executions wait for nothing"
            assert s.execute(text("SELECT COUNT(*) FROM engine_state")).scalar() == 0, "and are never invoked"
            assert all(s.execute(text("SELECT imported FROM executions")).scalars())
        # Importing the same execution again is refused and changes nothing.
        before = _counts(target)
        with pytest.raises(transfer.ImportRefused, match="already in the store"):
            transfer.import_histories(target.db, transfer.read_import_file(path))
        assert _counts(target) == before
    finally:
        target.close()


def test_ndjson_events_and_csv_operations(source: tuple[Durascope, list[str]]) -> None:
    src, arns = source
    out = io.StringIO()
    transfer.write_ndjson(src.db, arns[0], out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [e["EventId"] for e in lines] == list(range(1, len(lines) + 1))
    assert lines == src.history(arns[0])
    out = io.StringIO()
    transfer.write_csv(src.db, arns[0], out)
    rows = list(__import__("csv").DictReader(io.StringIO(out.getvalue())))
    assert rows == [{**rows[0], "name": "flaky", "type": "Step", "attempts": "3", "status": "SUCCEEDED", "error": ""}]
    out = io.StringIO()
    transfer.write_csv(src.db, arns[1], out)
    (doomed,) = list(__import__("csv").DictReader(io.StringIO(out.getvalue())))
    assert doomed["status"] == "FAILED" and doomed["attempts"] == "2" and "never works" in doomed["error"]


def test_bulk_export_with_filters_and_import_of_the_zip(source: tuple[Durascope, list[str]], database_url: str,
                                                        tmp_path: Path) -> None:
    src, arns = source
    zpath = tmp_path / "all.zip"
    out = _cli(src.settings.database_url, "export", "-o", str(zpath))
    assert out.returncode == 0, out.stderr
    assert "wrote 3 executions" in out.stdout
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == sorted([a.rsplit("/", 1)[1] + ".json" for a in arns] + ["manifest.json"])
    failed = tmp_path / "failed.ndjson"
    assert _cli(src.settings.database_url, "export", "--status", "FAILED", "--since", "1d", "-o", str(failed)).returncode == 0
    assert [json.loads(x)["DurableExecutionArn"] for x in failed.read_text().splitlines()] == [arns[1]]
    imported = _cli(database_url, "import", str(zpath))
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 executions" in imported.stdout
    one = _cli(database_url, "export", arns[2], "-o", str(tmp_path / "one.json"))
    assert one.returncode == 0
    assert json.loads((tmp_path / "one.json").read_text())["Events"] == src.history(arns[2])


def _doc(src: Durascope, arn: str) -> dict:  # type: ignore[type-arg]
    return transfer.history_document(src.db, arn)


def _hostile_cases(src: Durascope, arn: str, tmp_path: Path) -> list[tuple[Path, str]]:
    good = _doc(src, arn)
    cases: list[tuple[str, bytes, str]] = []

    def add(name: str, doc: object, why: str) -> None:
        cases.append((name, json.dumps(doc).encode() if not isinstance(doc, bytes) else doc, why))

    add("list.json", [1, 2], "expected a JSON object")
    add("no-events.json", {"DurableExecutionArn": arn}, "Events must be a non-empty list")
    add("bad-type.json", {**good, "Events": [{**good["Events"][0], "EventType": "Hacked"}]}, "unknown EventType")
    add("gap.json", {**good, "Events": [good["Events"][0], {**good["Events"][1], "EventId": 5}]}, "EventId must be 2")
    add("huge-ts.json", {**good, "Events": [{**good["Events"][0], "EventTimestamp": 1e300}]}, "outside 2000-2200")
    add("bool-ts.json", {**good, "Events": [{**good["Events"][0], "EventTimestamp": True}]}, "must be a number")
    add("nan.json", json.dumps({**good, "Events": [{**good["Events"][0], "EventTimestamp": "X"}]}).replace(
        '"X"', "NaN").encode(), "not valid JSON")
    add("truncated.json", json.dumps(good).encode()[:-40], "not valid JSON")
    add("extra-field.json", {**good, "Events": [{**good["Events"][0], "Evil": 1}]}, "unexpected field")
    add("no-arn.json", {"Events": good["Events"]}, "pass the execution ARN")
    add("bad-arn.json", {**good, "DurableExecutionArn": "arn:aws:lambda:../../etc"}, "not a valid durable execution ARN")
    nul_name = {**good["Events"][1], "Name": "a\u0000b"}
    add("nul.json", {**good, "Events": [good["Events"][0], nul_name, *good["Events"][2:]]}, "NUL")
    paths = []
    for name, data, why in cases:
        p = tmp_path / name
        p.write_bytes(data)
        paths.append((p, why))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.json", b"0" * (50 * 1024 * 1024))
    paths.append((bomb, "zip bomb"))
    traversal = tmp_path / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as zf:
        zf.writestr("../../evil.json", json.dumps(good))
    paths.append((traversal, "points outside the archive"))
    partly_bad = tmp_path / "partly.zip"
    with zipfile.ZipFile(partly_bad, "w") as zf:
        zf.writestr("good.json", json.dumps(good))
        zf.writestr("bad.json", json.dumps({**good, "Events": []}))
    paths.append((partly_bad, "Events must be a non-empty list"))
    return paths


def test_hostile_files_are_refused_with_a_message_and_change_nothing(source: tuple[Durascope, list[str]],
                                                                     database_url: str, tmp_path: Path) -> None:
    src, arns = source
    target = Durascope.open(database_url, run_engine=False)
    try:
        before = _counts(target)
        for path, why in _hostile_cases(src, arns[0], tmp_path):
            with pytest.raises(transfer.ImportRefused, match=why):
                transfer.import_histories(target.db, transfer.read_import_file(path))
            assert _counts(target) == before, path.name
        cli = _cli(database_url, "import", str(tmp_path / "gap.json"))
        assert cli.returncode == 1 and "not imported: gap.json: event 2: EventId must be 2" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        target.close()


def test_pull_from_another_durascope_and_import_aws_cli_output(source: tuple[Durascope, list[str]],
                                                               database_url: str, tmp_path: Path) -> None:
    src, arns = source
    server, served = build_server(Settings.from_env(database_url=src.settings.database_url), port=0, run_engine=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    try:
        pulled = _cli(database_url, "pull", "--endpoint-url", url, "--function", "flaky", env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert "pulled 1 execution; 0 already here" in pulled.stdout
        again = _cli(database_url, "pull", "--endpoint-url", url, "--function", "flaky", env=env)
        assert "pulled 0 executions; 1 already here" in again.stdout
        # What `aws lambda get-durable-execution-history` prints (ISO timestamps, no ARN) imports with --arn.
        cli = subprocess.run([sys.executable, "-m", "awscli", "lambda", "get-durable-execution-history",
                              "--durable-execution-arn", arns[1], "--endpoint-url", url, "--output", "json"],
                             capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert cli.returncode == 0, cli.stderr
        saved = tmp_path / "from-aws-cli.json"
        saved.write_text(cli.stdout)
        assert "EventTimestamp" in cli.stdout
        refused = _cli(database_url, "import", str(saved))
        assert refused.returncode == 1 and "--arn" in refused.stderr
        ok = _cli(database_url, "import", str(saved), "--arn", arns[1])
        assert ok.returncode == 0, ok.stderr
        target = Durascope.open(database_url, run_engine=False)
        try:
            assert [e["EventType"] for e in target.history(arns[1])] == [e["EventType"] for e in src.history(arns[1])]
            assert target.describe(arns[1]).status == "FAILED"
        finally:
            target.close()
    finally:
        server.shutdown()
        server.server_close()
        served.close()
