"""The replay check: recorded histories replayed with changed handlers (tests/handlers/th_replay.py),
with the SDK's own replay, on SQLite and PostgreSQL; the CLI over every source; the
execution page's button and its JSON twin.

Every step body of th_replay appends its name to a marks file: a replay must add nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recorder import replay
from recorder.api import Durascope
from recorder.replay_history import SourceError, from_file, from_store
from tests.conftest import HANDLERS, register, submit_form
from viewer import create_app


def _marks(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _finished(ds: Durascope, tmp_path: Path, name: str = "exec-1") -> tuple[str, Path]:
    marks = tmp_path / f"marks-{name}"
    arn = ds.start("orders", json.dumps({"marks": str(marks)}), name=name)
    assert ds.wait(arn, 60).status == "SUCCEEDED"
    assert _marks(marks) == ["validate", "reserve", "charge"]
    return arn, marks


def _held(ds: Durascope, tmp_path: Path) -> tuple[str, Path]:
    marks = tmp_path / "marks-held"
    arn = ds.start("held", json.dumps({"marks": str(marks)}), name="held-1")
    ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(arn)), 30,
                "the held execution never suspended")
    assert ds.describe(arn).status == "RUNNING"
    return arn, marks


def _check(ds: Durascope, arn: str, handler: str) -> replay.ReplayReport:
    return replay.check(from_store(ds.db, arn), f"th_replay:{handler}", HANDLERS)


def test_changed_handlers_against_a_finished_execution(ds: Durascope, tmp_path: Path) -> None:
    register(ds, "orders", "th_replay:order_flow")
    arn, marks = _finished(ds, tmp_path)

    same = _check(ds, arn, "order_flow")
    assert (same.result, same.exit_code, same.summary) == ("deterministic", 0, "deterministic: 5 operations replayed")
    assert same.replay_status == "SUCCEEDED" and same.stopped_at is None

    renamed = _check(ds, arn, "order_flow_renamed")
    assert (renamed.result, renamed.exit_code) == ("diverged", 1)
    d = renamed.divergence
    assert d is not None and d.place is not None
    assert (d.kind, d.place.path, d.place.parent_id, d.then, d.now) == ("mismatch", "4", None, "STEP 'charge'",
                                                                         "STEP 'bill'")
    assert renamed.summary == "diverged: mismatch at position 4 under the handler: then STEP 'charge'; now STEP 'bill'"
    assert "Non-deterministic operation identity" in d.message

    retyped = _check(ds, arn, "order_flow_retyped")
    d = retyped.divergence
    assert retyped.result == "diverged" and d is not None and d.place is not None
    assert (d.kind, d.place.path, d.then, d.now) == ("mismatch", "3", "WAIT 'cool-off'", "STEP 'cool-off'")

    shorter = _check(ds, arn, "order_flow_shorter")
    d = shorter.divergence
    assert shorter.result == "diverged" and d is not None and d.place is not None
    assert (d.kind, d.place.path, d.then) == ("unreached", "3", "WAIT 'cool-off'")
    assert "never reached" in d.now

    # A step the history lacks ends the check before its body runs.
    longer = _check(ds, arn, "order_flow_longer")
    assert longer.result == "deterministic" and longer.exit_code == 0
    assert longer.stopped_at is not None and "STEP 'notify' at position 5" in longer.stopped_at
    assert "does not have (not run)" in longer.stopped_at

    fails = _check(ds, arn, "order_flow_fails")
    assert fails.result == "diverged" and fails.divergence is not None
    assert fails.divergence.kind == "outcome"
    assert "the new code rejects every order" in fails.divergence.now

    # Not one step body ran during all of that.
    assert _marks(marks) == ["validate", "reserve", "charge"]


def test_changed_handlers_against_an_execution_in_flight(ds: Durascope, tmp_path: Path) -> None:
    register(ds, "held", "th_replay:held")
    arn, marks = _held(ds, tmp_path)
    before = _marks(marks)

    same = _check(ds, arn, "held")
    assert same.result == "deterministic" and same.replay_status == "PENDING"

    inside = _check(ds, arn, "held_renamed_inside")
    d = inside.divergence
    assert inside.result == "diverged" and d is not None and d.place is not None
    # The first operation inside the second one (the open "review" context).
    assert (d.kind, d.place.path, d.place.parent_name, d.then, d.now) == ("mismatch", "2.1", "review",
                                                                           "STEP 'prepare'", "STEP 'collect'")
    assert "under 'review'" in inside.summary

    inserted = _check(ds, arn, "held_step_before_callback")
    d = inserted.divergence
    assert inserted.result == "diverged" and d is not None and d.place is not None
    assert (d.place.path, d.then, d.now) == ("2.2", "CONTEXT 'approval'", "STEP 'score'")

    assert _marks(marks) == before


def test_what_cannot_run(ds: Durascope, tmp_path: Path) -> None:
    register(ds, "orders", "th_replay:order_flow")
    arn, _ = _finished(ds, tmp_path)
    history = from_store(ds.db, arn)
    missing = replay.check(history, "th_nowhere:handler", HANDLERS)
    assert (missing.result, missing.exit_code) == ("error", 2)
    assert "does not import" in missing.summary and "th_nowhere" in missing.summary
    plain = replay.check(history, "th_replay:not_durable", HANDLERS)
    assert plain.exit_code == 2 and "not a durable handler" in plain.summary
    bad = tmp_path / "bad.json"
    bad.write_text('{"Events": "no"}')
    with pytest.raises(SourceError, match="Events must be a non-empty list"):
        from_file(bad)


# --- the CLI ------------------------------------------------------------------------------------


def _cli(database_url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DURASCOPE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "recorder.cli", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def _aws_cli_file(ds: Durascope, arn: str, path: Path) -> None:
    """The history as `aws lambda get-durable-execution-history` saves it: ISO timestamps, no ARN."""
    events = ds.history(arn)
    for e in events:
        e["EventTimestamp"] = dt.datetime.fromtimestamp(e["EventTimestamp"], dt.UTC).isoformat()
    path.write_text(json.dumps({"Events": events}))


def test_cli_over_every_source(ds: Durascope, tmp_path: Path) -> None:
    url = ds.settings.database_url
    register(ds, "orders", "th_replay:order_flow")
    arn, marks = _finished(ds, tmp_path)
    handler = ["--handler", "th_replay:order_flow", "--code-dir", HANDLERS]

    out = _cli(url, "replay", arn, *handler)
    assert (out.returncode, out.stdout.strip()) == (0, "deterministic: 5 operations replayed"), out.stderr

    renamed = _cli(url, "replay", arn, "--handler", "th_replay:order_flow_renamed", "--code-dir", HANDLERS)
    assert renamed.returncode == 1
    assert renamed.stdout.splitlines()[0] == ("diverged: mismatch at position 4 under the handler: "
                                              "then STEP 'charge'; now STEP 'bill'")

    for fmt in ("json", "ndjson", "zip"):
        exported = tmp_path / f"export.{fmt}"
        assert _cli(url, "export", arn, "-o", str(exported)).returncode == 0
        if fmt == "ndjson":  # one event per line is not importable: a bulk NDJSON export is
            exported.unlink()
            assert _cli(url, "export", "--function", "orders", "--format", "ndjson",
                        "-o", str(exported)).returncode == 0
        out = _cli(url, "replay", str(exported), *handler)
        assert (out.returncode, out.stdout.strip()) == (0, "deterministic: 5 operations replayed"), (fmt, out.stderr)

    saved = tmp_path / "history.json"
    _aws_cli_file(ds, arn, saved)
    out = _cli(url, "replay", str(saved), "--handler", "th_replay:order_flow_shorter", "--code-dir", HANDLERS,
               "--output", "json")
    assert out.returncode == 1, out.stderr
    body = json.loads(out.stdout)
    assert body["exitCode"] == 1
    [report] = body["reports"]
    assert report["divergence"]["kind"] == "unreached" and report["divergence"]["position"] == "3"

    # Could not run: exit 2 and the message says why.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = _cli(url, "replay", str(bad), *handler)
    assert out.returncode == 2 and out.stderr.startswith("could not run: bad.json"), out.stderr
    out = _cli(url, "replay", arn, "--handler", "th_nowhere:handler", "--code-dir", HANDLERS)
    assert out.returncode == 2 and "does not import" in out.stderr
    out = _cli(url, "replay", "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/x/y",
               *handler)
    assert out.returncode == 2 and "not found" in out.stderr.lower()
    assert _marks(marks) == ["validate", "reserve", "charge"]


def test_cli_checks_a_function(ds: Durascope, tmp_path: Path) -> None:
    url = ds.settings.database_url
    register(ds, "orders", "th_replay:order_flow")
    _finished(ds, tmp_path, "first")
    _finished(ds, tmp_path, "second")
    out = _cli(url, "replay", "--function", "orders", "--handler", "th_replay:order_flow_renamed",
               "--code-dir", HANDLERS, "--since", "1h")
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["EXECUTION", "RESULT", "REPLAYED", "DETAIL"]
    assert [line.split()[:2] for line in lines[1:3]] == [["first", "diverged"], ["second", "diverged"]]
    assert lines[-1] == "2 executions: 0 deterministic, 2 diverged, 0 could not run"
    out = _cli(url, "replay", "--function", "orders", "--handler", "th_replay:order_flow", "--code-dir", HANDLERS)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "2 executions: 2 deterministic, 0 diverged, " \
                                                                  "0 could not run"
    out = _cli(url, "replay", "--function", "orders", "--handler", "th_replay:order_flow", "--code-dir", HANDLERS,
               "--status", "running")
    assert out.returncode == 2 and "has no stored executions that match" in out.stderr


# --- the viewer ---------------------------------------------------------------------------------


def test_execution_page_runs_the_check_in_place(ds: Durascope, tmp_path: Path) -> None:
    register(ds, "orders", "th_replay:order_flow")
    arn, marks = _finished(ds, tmp_path)
    client = create_app(durascope=ds).test_client()
    page = f"/executions/{arn}"
    assert 'action="/executions/' in client.get(page).get_data(as_text=True)

    resp = submit_form(client, page, f"{page}/replay-check")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-replay-result="deterministic"' in html and "deterministic: 5 operations replayed" in html
    assert "th_replay:order_flow" in html and "<h1>exec-1" in html  # the page around it

    # Without the page's CSRF token the form is refused.
    assert client.post(f"{page}/replay-check").status_code in (400, 403)

    # The handler changed on disk after the execution ran: the function is re-registered.
    register(ds, "orders", "th_replay:order_flow_renamed")
    twin = client.post(f"/api/v1/executions/{arn}/replay-check")
    body: dict[str, Any] = twin.get_json()
    assert twin.status_code == 200
    assert (body["result"], body["exitCode"], body["handler"]) == ("diverged", 1, "th_replay:order_flow_renamed")
    assert body["divergence"] | {"message": ""} == {
        "kind": "mismatch", "then": "STEP 'charge'", "now": "STEP 'bill'", "message": "",
        "operationId": body["divergence"]["operationId"], "position": "4", "parentId": None, "parentName": None}

    missing = client.post("/api/v1/executions/arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST"
                          "/durable-execution/nope/nope/replay-check")
    assert missing.status_code == 404 and missing.get_json()["error"]["status"] == 404
    assert _marks(marks) == ["validate", "reserve", "charge"]
