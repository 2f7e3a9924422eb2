"""Import and pull refuse what would break the viewer, in the user's words, and change nothing.

Before: ``StepStartedDetails: {"RetryDetails": [1], "ScheduledEndTimestamp": "soon"}``
imported, and the execution's events page and its JSON twin then answered 500; a text
where a number belongs came back as ``invalid literal for int() with base 10: 'x'``; deep
nesting ended in a RecursionError; and ``pull`` read whatever an endpoint kept sending.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from recorder import pull, transfer
from recorder.api import Durascope
from viewer import create_app

ACCOUNT = "123456789012"


def _history(execution_id: str, *events: dict[str, Any]) -> dict[str, Any]:
    arn = (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:imported:$LATEST/durable-execution/{execution_id}/{execution_id}"
    )
    first = {
        "EventType": "ExecutionStarted",
        "EventId": 1,
        "Id": execution_id,
        "Name": execution_id,
        "EventTimestamp": 1_790_000_000.0,
        "ExecutionStartedDetails": {"Input": {"Payload": "{}"}, "ExecutionTimeout": 60},
    }
    numbered = [{**e, "EventId": i + 2, "EventTimestamp": 1_790_000_001.0 + i} for i, e in enumerate(events)]
    return {"DurableExecutionArn": arn, "Events": [first, *numbered]}


def _step_started(details: Any) -> dict[str, Any]:
    return {"EventType": "StepStarted", "SubType": "Step", "Id": "op1", "Name": "charge", "StepStartedDetails": details}


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    (
        "issue example",
        _step_started({"RetryDetails": [1], "ScheduledEndTimestamp": "soon"}),
        "event 2 (StepStarted): StepStartedDetails: unexpected field 'RetryDetails'",
    ),
    (
        "text for a number",
        {
            "EventType": "CallbackStarted",
            "SubType": "Callback",
            "Id": "cb1",
            "CallbackStartedDetails": {"CallbackId": "QUJD", "Timeout": "x"},
        },
        "event 2 (CallbackStarted): CallbackStartedDetails.Timeout: must be a whole number, not the text 'x'",
    ),
    (
        "list for a structure",
        {
            "EventType": "StepFailed",
            "SubType": "Step",
            "Id": "op1",
            "StepFailedDetails": {"Error": [], "RetryDetails": {"CurrentAttempt": 1}},
        },
        "StepFailedDetails.Error: must be an object, not a list",
    ),
    (
        "wrong stack trace",
        {
            "EventType": "StepFailed",
            "SubType": "Step",
            "Id": "op1",
            "StepFailedDetails": {"Error": {"Payload": {"StackTrace": "not a list"}}, "RetryDetails": {}},
        },
        "StepFailedDetails.Error.Payload.StackTrace: must be a list",
    ),
    (
        "missing required",
        {"EventType": "WaitStarted", "SubType": "Wait", "Id": "w1", "WaitStartedDetails": {"Duration": 5}},
        "WaitStartedDetails.ScheduledEndTimestamp: is required",
    ),
    (
        "bad timestamp",
        {
            "EventType": "WaitStarted",
            "SubType": "Wait",
            "Id": "w1",
            "WaitStartedDetails": {"Duration": 5, "ScheduledEndTimestamp": "soon"},
        },
        "ScheduledEndTimestamp: timestamp 'soon' is not ISO-8601",
    ),
    (
        "operation id form",
        {"EventType": "StepStarted", "SubType": "Step", "Id": "<script>", "StepStartedDetails": {}},
        "event 2 (StepStarted): Id: '<script>' is not of the form",
    ),
    (
        "negative attempt",
        {
            "EventType": "StepSucceeded",
            "SubType": "Step",
            "Id": "op1",
            "StepSucceededDetails": {"Result": {"Payload": "1"}, "RetryDetails": {"CurrentAttempt": -1}},
        },
        "RetryDetails.CurrentAttempt: must be at least 0",
    ),
    ("deep nesting", _step_started({"Deep": _nested(800)}), "StepStartedDetails: unexpected field 'Deep'"),
    (
        "details of another type",
        {**_step_started({}), "WaitStartedDetails": {}},
        "WaitStartedDetails does not belong to a StepStarted event",
    ),
]


def _count(ds: Durascope) -> int:
    with ds.db.read() as s:
        return int(s.execute(text("SELECT COUNT(*) FROM events")).scalar() or 0)


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_malformed_event_is_refused_naming_the_event_and_the_field(
    control_only: Durascope, tmp_path: Path, case: tuple[str, Any, str]
) -> None:
    _, event, message = case
    path = tmp_path / "history.json"
    path.write_text(json.dumps(_history(uuid.uuid4().hex, event)))
    with pytest.raises(transfer.ImportRefused, match=re.escape(message)):
        transfer.import_histories(control_only.db, transfer.read_import_file(path))
    assert _count(control_only) == 0


def test_the_command_says_it_in_one_line(control_only: Durascope, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # deeper than any JSON parser recurses
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_history(uuid.uuid4().hex, HOSTILE[1][1])))
    for path, words in ((deep, "nested too deeply"), (bad, "must be a whole number, not the text 'x'")):
        cli = subprocess.run(
            [sys.executable, "-m", "recorder.cli", "import", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"DURASCOPE_DATABASE_URL": control_only.settings.database_url, "PATH": "/usr/bin"},
        )
        assert cli.returncode == 1 and words in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr and "invalid literal" not in cli.stderr
    assert _count(control_only) == 0


def test_a_well_formed_import_renders_on_every_page(control_only: Durascope, tmp_path: Path) -> None:
    execution_id = uuid.uuid4().hex
    doc = _history(
        execution_id,
        {"EventType": "StepStarted", "SubType": "Step", "Id": "op1", "Name": "charge", "StepStartedDetails": {}},
        {
            "EventType": "StepFailed",
            "SubType": "Step",
            "Id": "op1",
            "Name": "charge",
            "StepFailedDetails": {
                "Error": {
                    "Payload": {"ErrorType": "ValueError", "ErrorMessage": "<b>no</b>", "StackTrace": ["line 1"]}
                },
                "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2},
            },
        },
    )
    path = tmp_path / "good.json"
    path.write_text(json.dumps(doc))
    [arn] = transfer.import_histories(control_only.db, transfer.read_import_file(path))
    client = create_app(durascope=control_only).test_client()
    quoted = arn.replace("/", "%2F")
    for page in (f"/executions/{quoted}", f"/executions/{quoted}/events"):
        resp = client.get(page)
        assert resp.status_code == 200, page
        assert b"<b>no</b>" not in resp.data and b"&lt;b&gt;no&lt;/b&gt;" in resp.data, page
    for twin in (f"/api/v1/executions/{quoted}", f"/api/v1/executions/{quoted}/events"):
        resp = client.get(twin)
        assert resp.status_code == 200 and resp.is_json, twin


class _Endless(BaseHTTPRequestHandler):
    """A Lambda-compatible endpoint that never stops: every list page has a next page, and
    every history page carries a megabyte."""

    def do_GET(self) -> None:
        if "/history" in self.path:
            body = {
                "Events": [
                    {
                        "EventType": "ExecutionStarted",
                        "EventId": 1,
                        "Id": "e",
                        "EventTimestamp": 1_790_000_000,
                        "ExecutionStartedDetails": {"Input": {"Payload": "x" * 1_000_000}, "ExecutionTimeout": 60},
                    }
                ],
                "NextMarker": uuid.uuid4().hex,
            }
        else:
            execution_id = uuid.uuid4().hex
            arn = (
                f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f:$LATEST/durable-execution/{execution_id}/{execution_id}"
            )
            executions = (
                [
                    {
                        "DurableExecutionArn": arn,
                        "DurableExecutionName": execution_id,
                        "FunctionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f",
                        "Status": "SUCCEEDED",
                        "StartTimestamp": 1_790_000_000,
                    }
                ]
                if "history-heavy" in self.path
                else []
            )
            body = {"DurableExecutions": executions, "NextMarker": uuid.uuid4().hex}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pull_stops_at_its_page_and_size_caps(
    control_only: Durascope, endless: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setattr(pull, "MAX_PULL_PAGES", 40)
    with pytest.raises(pull.PullFailed, match="kept sending pages"):
        pull.pull(control_only.db, "f", endless, "us-east-1", None)
    monkeypatch.setattr(pull, "MAX_PULL_BYTES", 5 * 1024 * 1024)
    monkeypatch.setattr(pull, "MAX_PULL_PAGES", 10_000)
    with pytest.raises(pull.PullFailed, match="sent more than 5 MiB"):
        pull.pull(control_only.db, "history-heavy", endless, "us-east-1", None)
    assert _count(control_only) == 0
