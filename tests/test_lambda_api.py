"""The Lambda-compatible REST API, driven by real boto3 against an in-process server on
a loopback port, on SQLite and PostgreSQL. boto3 is the only client except where a
request cannot be made with it (malformed bodies, unknown routes): those use
http.client and check the raw AWS error shape."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.config import Config

from recorder.api import Durascope, wait_until
from recorder.engine.control import ControlPlane, InvocationInput, InvocationOutcome
from tests.conftest import HANDLERS, register
from viewer import create_app
from viewer.wsgiserver import WSGIServer

REPO = str(Path(__file__).resolve().parent.parent)
FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"


def enc(text: str) -> str:
    return quote(text, safe="")


def boto_client(url: str, validate: bool = True) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate, read_timeout=120),
    )


@dataclass
class Api:
    ds: Durascope
    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    server: WSGIServer | None = None

    def __post_init__(self) -> None:
        self.client = boto_client(self.url)
        # Client-side validation off, to reach the server's own checks.
        self.loose = boto_client(self.url, validate=False)

    def raw(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, hdrs, parsed

    def history(self, arn: str, **kw: Any) -> list[dict[str, Any]]:
        return self.client.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=1000, **kw)["Events"]

    def status(self, arn: str) -> str:
        return self.client.get_durable_execution(DurableExecutionArn=arn)["Status"]

    def wait_status(self, arn: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_until(
            lambda: (d := self.client.get_durable_execution(DurableExecutionArn=arn))["Status"] in statuses and d,
            timeout,
            f"{arn} never reached {statuses}",
        )

    def callback_id(self, arn: str) -> str:
        return wait_until(
            lambda: next(
                (
                    e["CallbackStartedDetails"]["CallbackId"]
                    for e in self.history(arn)
                    if e["EventType"] == "CallbackStarted"
                ),
                None,
            ),
            30,
            "no callback started",
        )

    def start(self, function: str, payload: Any = None, name: str | None = None) -> str:
        kw: dict[str, Any] = {"FunctionName": function, "InvocationType": "Event"}
        if payload is not None:
            kw["Payload"] = json.dumps(payload).encode()
        if name:
            kw["DurableExecutionName"] = name
        r = self.client.invoke(**kw)
        assert r["StatusCode"] == 202
        return r["DurableExecutionArn"]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["EventType"] for e in events]


@contextmanager
def serving(ds: Durascope, **config: Any) -> Iterator[Api]:
    app = create_app(ds.settings, durascope=ds, **config)
    seen: list[tuple[str, str]] = []
    inner = app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(
            (
                environ["REQUEST_METHOD"],
                environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""),
            )
        )
        return inner(environ, start_response)

    app.wsgi_app = recording
    server = WSGIServer(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Api(ds, f"http://127.0.0.1:{server.server_port}", seen, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def register_all(ds: Durascope) -> None:
    register(ds, "add-one", "th_basic:add_one")
    register(ds, "approval", "th_basic:approval")
    register(ds, "api-fails", "th_api_handlers:fails_fast")
    register(ds, "api-sleeps", "th_api_handlers:sleeps")
    register(ds, "api-steps", "th_api_handlers:steps_and_child")
    register(ds, "api-callback", "th_api_handlers:steps_then_callback")
    register(ds, "mixed", "th_api_handlers:mixed")


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    """Server plus a running engine: executions run to their end."""
    ds = Durascope.open(database_url)
    try:
        register_all(ds)
        with serving(ds) as a:
            yield a
    finally:
        ds.close()


@pytest.fixture
def api_manual(database_url: str) -> Iterator[Api]:
    """Server without an engine: the test runs each invocation itself."""
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register_all(ds)
        with serving(ds, DURASCOPE_SYNC_INVOKE_TIMEOUT=0.5) as a:
            yield a
    finally:
        ds.close()


def _execution_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def _is_recent(value: Any) -> bool:
    """A response timestamp is an aware datetime near now (epoch seconds, not ms)."""
    now = dt.datetime.now(dt.UTC)
    return isinstance(value, dt.datetime) and value.tzinfo is not None and abs((now - value).total_seconds()) < 300


# --- Invoke ---------------------------------------------------------------------------------


def test_request_response_invoke_returns_the_result_after_the_execution_ends(api: Api) -> None:
    r = api.client.invoke(FunctionName="add-one", Payload=b'{"a": 41}')
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert json.loads(r["Payload"].read()) == 42
    assert r["ExecutedVersion"] == "$LATEST"
    arn = r["DurableExecutionArn"]
    assert arn.startswith(FN_ARN.format("add-one") + ":$LATEST/durable-execution/")
    # Terminal when Invoke returns: the whole history is there at once.
    events = api.history(arn)
    assert types(events) == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    assert all(_is_recent(e["EventTimestamp"]) for e in events)
    inv = events[3]["InvocationCompletedDetails"]
    assert _is_recent(inv["StartTimestamp"]) and _is_recent(inv["EndTimestamp"])


def test_invoke_by_function_arn_partial_arn_and_qualifier(api: Api) -> None:
    for name in (
        FN_ARN.format("add-one"),
        FN_ARN.format("add-one") + ":$LATEST",
        "123456789012:function:add-one",
        "add-one:$LATEST",
    ):
        r = api.client.invoke(FunctionName=name, Payload=b'{"a": 1}')
        assert json.loads(r["Payload"].read()) == 2, name
    r = api.client.invoke(FunctionName="add-one", Qualifier="$LATEST", Payload=b'{"a": 2}')
    assert json.loads(r["Payload"].read()) == 3
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.invoke(FunctionName="add-one", Qualifier="7", Payload=b"{}")
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.invoke(FunctionName="no-such-function", Payload=b"{}")


def test_event_invoke_and_get_durable_execution(api: Api) -> None:
    r = api.client.invoke(
        FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 2}', DurableExecutionName="evt-1"
    )
    assert r["StatusCode"] == 202 and r["Payload"].read() == b""
    arn = r["DurableExecutionArn"]
    assert "/durable-execution/evt-1/" in arn
    d = api.wait_status(arn, "SUCCEEDED")
    assert d["DurableExecutionArn"] == arn
    assert d["DurableExecutionName"] == "evt-1"
    assert d["FunctionArn"] == FN_ARN.format("add-one") + ":$LATEST"
    assert d["InputPayload"] == '{"a": 2}' and d["Result"] == "3"
    assert d["Version"] == "$LATEST" and d["ExecutionDataIncluded"] is True
    assert _is_recent(d["StartTimestamp"]) and d["EndTimestamp"] >= d["StartTimestamp"]
    assert d["DurableConfig"]["ExecutionTimeout"] > 0 and "Error" not in d
    lean = api.client.get_durable_execution(DurableExecutionArn=arn, IncludeExecutionData=False)
    assert lean["ExecutionDataIncluded"] is False
    assert not {"InputPayload", "Result", "Error"} & set(lean)
    # Same name + same payload: the existing execution, for either invocation type.
    again = api.client.invoke(
        FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 2}', DurableExecutionName="evt-1"
    )
    assert again["DurableExecutionArn"] == arn and again["StatusCode"] == 202
    sync = api.client.invoke(FunctionName="add-one", Payload=b'{"a": 2}', DurableExecutionName="evt-1")
    assert sync["DurableExecutionArn"] == arn and sync["Payload"].read() == b"3"
    with pytest.raises(api.client.exceptions.DurableExecutionAlreadyStartedException):
        api.client.invoke(FunctionName="add-one", Payload=b'{"a": 3}', DurableExecutionName="evt-1")
    running = api.start("api-sleeps", {"seconds": 600})
    d = api.client.get_durable_execution(DurableExecutionArn=running)
    assert d["Status"] == "RUNNING" and "EndTimestamp" not in d
    assert d["ExpectedExecutionTimeoutTimestamp"] > d["StartTimestamp"]


def test_failed_execution_is_an_unhandled_function_error(api: Api) -> None:
    r = api.client.invoke(FunctionName="api-fails", Payload=b'{"message": "no good"}')
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled"
    body = json.loads(r["Payload"].read())
    assert "no good" in body["errorMessage"] and body["errorType"]
    d = api.client.get_durable_execution(DurableExecutionArn=r["DurableExecutionArn"])
    assert d["Status"] == "FAILED" and "no good" in d["Error"]["ErrorMessage"]
    assert "Error" not in api.client.get_durable_execution(
        DurableExecutionArn=r["DurableExecutionArn"], IncludeExecutionData=False
    )


def test_invoke_dry_run_and_bad_requests(api: Api) -> None:
    r = api.client.invoke(FunctionName="add-one", InvocationType="DryRun")
    assert r["StatusCode"] == 204 and "DurableExecutionArn" not in r
    assert api.client.list_durable_executions_by_function(FunctionName="add-one")["DurableExecutions"] == []
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.invoke(FunctionName="nope", InvocationType="DryRun")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.invoke(FunctionName="add-one", InvocationType="Event", DurableExecutionName="bad name!")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.invoke(FunctionName="add-one", InvocationType="Sometimes")
    with pytest.raises(api.client.exceptions.InvalidRequestContentException):
        api.client.invoke(FunctionName="add-one", InvocationType="Event", Payload=b"not json")
    big = json.dumps("x" * (1024 * 1024 + 10)).encode()
    with pytest.raises(api.client.exceptions.RequestTooLargeException):
        api.client.invoke(FunctionName="add-one", InvocationType="Event", Payload=big)
    assert api.client.list_durable_executions_by_function(FunctionName="add-one")["DurableExecutions"] == []


def test_request_response_invoke_gives_up_waiting_with_a_function_error(api_manual: Api) -> None:
    # No engine runs here, so the execution never ends; the server's wait limit is 0.5 s.
    r = api_manual.client.invoke(FunctionName="add-one", Payload=b'{"a": 1}')
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled"
    assert json.loads(r["Payload"].read())["errorType"] == "Sandbox.Timedout"
    assert api_manual.status(r["DurableExecutionArn"]) == "RUNNING"


# --- history ----------------------------------------------------------------------------------


def test_history_paging_reverse_order_and_include_execution_data(api: Api) -> None:
    r = api.client.invoke(FunctionName="add-one", Payload=b'{"a": 1}')
    arn = r["DurableExecutionArn"]
    full = api.client.get_durable_execution_history(DurableExecutionArn=arn)
    assert "NextMarker" not in full
    events = full["Events"]
    n = len(events)
    assert [e["EventId"] for e in events] == list(range(1, n + 1)) and n == 5

    pages, marker = [], None
    while True:
        kw: dict[str, Any] = {"DurableExecutionArn": arn, "MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = api.client.get_durable_execution_history(**kw)
        pages.append([e["EventId"] for e in page["Events"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert pages == [[1, 2], [3, 4], [5]]

    rev = api.client.get_durable_execution_history(DurableExecutionArn=arn, ReverseOrder=True)["Events"]
    assert [e["EventId"] for e in rev] == [5, 4, 3, 2, 1]
    first = api.client.get_durable_execution_history(DurableExecutionArn=arn, ReverseOrder=True, MaxItems=3)
    rest = api.client.get_durable_execution_history(
        DurableExecutionArn=arn, ReverseOrder=True, MaxItems=3, Marker=first["NextMarker"]
    )
    assert [e["EventId"] for e in first["Events"] + rest["Events"]] == [5, 4, 3, 2, 1]
    assert "NextMarker" not in rest

    paginator = api.client.get_paginator("get_durable_execution_history")
    paged = [
        e for p in paginator.paginate(DurableExecutionArn=arn, PaginationConfig={"PageSize": 2}) for e in p["Events"]
    ]
    assert paged == events
    # MaxItems=0 is allowed by the model: the default page size.
    assert api.client.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=0)["Events"] == events

    started = events[0]["ExecutionStartedDetails"]
    assert started["Input"] == {"Payload": '{"a": 1}', "Truncated": False}
    assert events[2]["StepSucceededDetails"]["Result"] == {"Payload": "2", "Truncated": False}
    lean = api.client.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=False)["Events"]
    assert types(lean) == types(events)
    assert lean[0]["ExecutionStartedDetails"]["Input"] == {"Truncated": True}
    assert lean[0]["ExecutionStartedDetails"]["ExecutionTimeout"] == started["ExecutionTimeout"]
    assert lean[2]["StepSucceededDetails"]["Result"] == {"Truncated": True}
    assert lean[2]["StepSucceededDetails"]["RetryDetails"] == events[2]["StepSucceededDetails"]["RetryDetails"]
    assert lean[4]["ExecutionSucceededDetails"]["Result"] == {"Truncated": True}
    assert [e["EventTimestamp"] for e in lean] == [e["EventTimestamp"] for e in events]

    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.get_durable_execution_history(DurableExecutionArn=arn, Marker="not a marker")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=1001)
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.get_durable_execution_history(DurableExecutionArn=arn.rsplit("/", 1)[0] + "/nope")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.get_durable_execution_history(DurableExecutionArn="arn:aws:lambda:nope")


# --- ListDurableExecutionsByFunction ------------------------------------------------------------


def test_list_executions_filters_order_and_paging(api: Api) -> None:
    modes = ["ok", "fail", "sleep", "ok", "sleep"]
    arns, starts = [], []
    for i, mode in enumerate(modes):
        if starts:  # distinct start instants, so the expected order is exact
            wait_until(lambda: dt.datetime.now(dt.UTC) > starts[-1] + dt.timedelta(milliseconds=2), 5)
        arn = api.start("mixed", {"mode": mode}, name=f"m{i}")
        arns.append(arn)
        starts.append(api.client.get_durable_execution(DurableExecutionArn=arn)["StartTimestamp"])
    api.wait_status(arns[0], "SUCCEEDED")
    api.wait_status(arns[1], "FAILED")
    api.wait_status(arns[3], "SUCCEEDED")
    for i in (2, 4):
        wait_until(lambda i=i: "WaitStarted" in types(api.history(arns[i])), 30)
    api.client.stop_durable_execution(DurableExecutionArn=arns[4])
    expected_status = ["SUCCEEDED", "FAILED", "RUNNING", "SUCCEEDED", "STOPPED"]

    def names(**kw: Any) -> list[str]:
        out = api.client.list_durable_executions_by_function(FunctionName="mixed", **kw)
        return [x["DurableExecutionName"] for x in out["DurableExecutions"]]

    listed = api.client.list_durable_executions_by_function(FunctionName="mixed")
    assert "NextMarker" not in listed
    items = listed["DurableExecutions"]
    assert [x["DurableExecutionName"] for x in items] == ["m4", "m3", "m2", "m1", "m0"]  # newest first
    for item in items:
        i = int(item["DurableExecutionName"][1:])
        assert item["DurableExecutionArn"] == arns[i]
        assert item["FunctionArn"] == FN_ARN.format("mixed") + ":$LATEST"
        assert item["Status"] == expected_status[i]
        assert item["StartTimestamp"] == starts[i]
        assert ("EndTimestamp" in item) == (expected_status[i] != "RUNNING")
    assert names(ReverseOrder=True) == ["m0", "m1", "m2", "m3", "m4"]
    assert names(ReverseOrder=False) == ["m4", "m3", "m2", "m1", "m0"]
    assert names(Statuses=["SUCCEEDED"]) == ["m3", "m0"]
    assert names(Statuses=["RUNNING", "STOPPED"]) == ["m4", "m2"]
    assert names(Statuses=["TIMED_OUT"]) == []
    assert names(DurableExecutionName="m1") == ["m1"]
    assert names(DurableExecutionName="zzz") == []
    assert names(StartedAfter=starts[1], StartedBefore=starts[3]) == ["m3", "m2", "m1"]  # inclusive
    assert names(StartedAfter=starts[3]) == ["m4", "m3"]
    assert names(StartedBefore=starts[0]) == ["m0"]
    assert names(StartedAfter=starts[4] + dt.timedelta(seconds=1)) == []
    assert names(Qualifier="$LATEST") == names()
    for fn in (FN_ARN.format("mixed"), FN_ARN.format("mixed") + ":$LATEST", "123456789012:function:mixed"):
        assert [
            x["DurableExecutionName"]
            for x in api.client.list_durable_executions_by_function(FunctionName=fn)["DurableExecutions"]
        ] == ["m4", "m3", "m2", "m1", "m0"]

    def pages(**kw: Any) -> list[list[str]]:
        out, marker = [], None
        while True:
            args = dict(kw, FunctionName="mixed", MaxItems=2)
            if marker:
                args["Marker"] = marker
            page = api.client.list_durable_executions_by_function(**args)
            out.append([x["DurableExecutionName"] for x in page["DurableExecutions"]])
            marker = page.get("NextMarker")
            if not marker:
                return out

    assert pages() == [["m4", "m3"], ["m2", "m1"], ["m0"]]
    assert pages(ReverseOrder=True) == [["m0", "m1"], ["m2", "m3"], ["m4"]]
    assert pages(Statuses=["SUCCEEDED", "FAILED", "STOPPED"]) == [["m4", "m3"], ["m1", "m0"]]
    paginator = api.client.get_paginator("list_durable_executions_by_function")
    assert [
        x["DurableExecutionName"]
        for p in paginator.paginate(FunctionName="mixed", ReverseOrder=True, PaginationConfig={"PageSize": 2})
        for x in p["DurableExecutions"]
    ] == ["m0", "m1", "m2", "m3", "m4"]

    marker = api.client.list_durable_executions_by_function(FunctionName="mixed", MaxItems=2)["NextMarker"]
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):  # marker of another query
        api.client.list_durable_executions_by_function(
            FunctionName="mixed", MaxItems=2, Marker=marker, ReverseOrder=True
        )
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.list_durable_executions_by_function(FunctionName="mixed", Marker="garbage!")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.list_durable_executions_by_function(FunctionName="mixed", Statuses=["BOGUS"])
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.list_durable_executions_by_function(FunctionName="mixed", Statuses=["RUNNING"] * 11)
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.list_durable_executions_by_function(FunctionName="mixed", MaxItems=1001)
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.list_durable_executions_by_function(FunctionName="mixed", DurableExecutionName="bad name")
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.list_durable_executions_by_function(FunctionName="no-such-function")
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.list_durable_executions_by_function(FunctionName="mixed", Qualifier="3")
    status, _, body = api.raw("GET", "/2025-12-01/functions/mixed/durable-executions?StartedAfter=yesterday")
    assert status == 400 and body["Type"] == "InvalidParameterValueException"
    # Epoch seconds are accepted in the query as well as ISO-8601.
    status, _, body = api.raw(
        "GET", f"/2025-12-01/functions/mixed/durable-executions?StartedAfter={starts[3].timestamp():.3f}"
    )
    assert status == 200 and [x["DurableExecutionName"] for x in body["DurableExecutions"]] == ["m4", "m3"]


def test_list_default_page_is_100(api_manual: Api) -> None:
    for i in range(101):
        api_manual.ds.control.start_execution("add-one", "{}", f"n{i}")
    first = api_manual.client.list_durable_executions_by_function(FunctionName="add-one")
    assert len(first["DurableExecutions"]) == 100 and first["NextMarker"]
    rest = api_manual.client.list_durable_executions_by_function(FunctionName="add-one", Marker=first["NextMarker"])
    assert len(rest["DurableExecutions"]) == 1 and "NextMarker" not in rest
    seen = {x["DurableExecutionName"] for x in first["DurableExecutions"] + rest["DurableExecutions"]}
    assert seen == {f"n{i}" for i in range(101)}


# --- callbacks --------------------------------------------------------------------------------


def test_callback_success_and_heartbeat(api: Api) -> None:
    arn = api.start("approval", {"timeout": 300, "heartbeat": 60})
    cid = api.callback_id(arn)
    assert (
        api.client.send_durable_execution_callback_heartbeat(CallbackId=cid)["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )
    api.client.send_durable_execution_callback_success(CallbackId=cid, Result=b'"approved"')
    api.wait_status(arn, "SUCCEEDED")
    done = [e for e in api.history(arn) if e["EventType"] == "CallbackSucceeded"]
    assert done[0]["CallbackSucceededDetails"]["Result"] == {"Payload": '"approved"', "Truncated": False}
    with pytest.raises(api.client.exceptions.CallbackTimeoutException):
        api.client.send_durable_execution_callback_success(CallbackId=cid, Result=b'"again"')
    with pytest.raises(api.client.exceptions.CallbackTimeoutException):
        api.client.send_durable_execution_callback_failure(CallbackId=cid)
    with pytest.raises(api.client.exceptions.CallbackTimeoutException):
        api.client.send_durable_execution_callback_heartbeat(CallbackId=cid)
    # Unknown ids containing "/" and "+" route correctly (botocore sends %2F and %2B).
    for unknown in ("QUJD/REVG+R0g=", "ab//cd", "zz+/"):
        with pytest.raises(api.client.exceptions.ResourceNotFoundException):
            api.client.send_durable_execution_callback_success(CallbackId=unknown, Result=b"1")
        with pytest.raises(api.client.exceptions.ResourceNotFoundException):
            api.client.send_durable_execution_callback_heartbeat(CallbackId=unknown)
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.send_durable_execution_callback_heartbeat(CallbackId="not base64!")


def _callback_result(api: Api, arn: str) -> dict[str, Any]:
    api.wait_status(arn, "SUCCEEDED")
    return next(
        e["CallbackSucceededDetails"]["Result"] for e in api.history(arn) if e["EventType"] == "CallbackSucceeded"
    )


def test_callback_success_with_empty_and_raw_bodies(api: Api) -> None:
    arn = api.start("approval", {"timeout": 300})
    api.client.send_durable_execution_callback_success(CallbackId=api.callback_id(arn))
    assert _callback_result(api, arn) == {"Truncated": False}
    arn2 = api.start("approval", {"timeout": 300})
    raw = '{"ünïcode": [1, 2]}'.encode()  # stored verbatim, as UTF-8 text
    api.client.send_durable_execution_callback_success(CallbackId=api.callback_id(arn2), Result=raw)
    assert _callback_result(api, arn2) == {"Payload": raw.decode(), "Truncated": False}


def test_callback_failure(api: Api) -> None:
    arn = api.start("approval", {"timeout": 300})
    cid = api.callback_id(arn)
    error = {"ErrorMessage": "denied", "ErrorType": "Rejected", "ErrorData": '{"why": 1}', "StackTrace": ["at x"]}
    api.client.send_durable_execution_callback_failure(CallbackId=cid, Error=error)
    d = api.wait_status(arn, "FAILED")
    assert "denied" in d["Error"]["ErrorMessage"]
    failed = [e for e in api.history(arn) if e["EventType"] == "CallbackFailed"]
    assert failed[0]["CallbackFailedDetails"]["Error"] == {"Payload": error, "Truncated": False}
    lean = [e for e in api.history(arn, IncludeExecutionData=False) if e["EventType"] == "CallbackFailed"]
    assert lean[0]["CallbackFailedDetails"]["Error"] == {"Truncated": True}
    with pytest.raises(api.client.exceptions.CallbackTimeoutException):
        api.client.send_durable_execution_callback_failure(CallbackId=cid, Error=error)


# --- stop -------------------------------------------------------------------------------------


def test_stop_durable_execution(api: Api) -> None:
    arn = api.start("api-sleeps", {"seconds": 600})
    # Suspended (no invocation in flight), so ExecutionStopped is the last event.
    wait_until(lambda: types(api.history(arn))[-1:] == ["InvocationCompleted"], 30, "not suspended")
    out = api.client.stop_durable_execution(
        DurableExecutionArn=arn, Error={"ErrorMessage": "halt", "ErrorType": "Ops.Stop"}
    )
    assert _is_recent(out["StopTimestamp"])
    d = api.client.get_durable_execution(DurableExecutionArn=arn)
    assert d["Status"] == "STOPPED" and d["EndTimestamp"] == out["StopTimestamp"]
    assert d["Error"] == {"ErrorMessage": "halt", "ErrorType": "Ops.Stop"}
    last = api.history(arn)[-1]
    assert last["EventType"] == "ExecutionStopped"
    assert last["ExecutionStoppedDetails"]["Error"]["Payload"] == {"ErrorMessage": "halt", "ErrorType": "Ops.Stop"}
    # Idempotent: stopping a closed execution returns its end time.
    assert api.client.stop_durable_execution(DurableExecutionArn=arn)["StopTimestamp"] == out["StopTimestamp"]

    arn2 = api.start("api-sleeps", {"seconds": 600})
    api.client.stop_durable_execution(DurableExecutionArn=arn2)
    assert (
        api.client.get_durable_execution(DurableExecutionArn=arn2)["Error"]["ErrorMessage"]
        == "Execution stopped by user request"
    )
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.stop_durable_execution(DurableExecutionArn=arn.rsplit("/", 1)[0] + "/unknown-id")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.stop_durable_execution(DurableExecutionArn="not-an-arn")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.stop_durable_execution(DurableExecutionArn=arn2, Error={"ErrorMessage": 5})


# --- checkpoint and state (what the SDK calls) ---------------------------------------------------


def _steps(*ids: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, op_id in enumerate(ids):
        out.append({"Id": op_id, "Type": "STEP", "SubType": "Step", "Action": "START", "Name": f"step-{i}"})
        out.append({"Id": op_id, "Type": "STEP", "SubType": "Step", "Action": "SUCCEED", "Payload": str(i)})
    return out


def test_checkpoint_and_state_over_rest(api_manual: Api) -> None:
    c, ds = api_manual.client, api_manual.ds
    arn = api_manual.start("add-one", {"a": 1})
    eid = _execution_id(arn)
    inv = ds.control.begin_invocation(eid, "rest-test")
    assert inv is not None
    st = c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=inv.token)
    assert [o["Type"] for o in st["Operations"]] == ["EXECUTION"] and "NextMarker" not in st
    assert st["Operations"][0]["Id"] == eid
    assert st["Operations"][0]["ExecutionDetails"]["InputPayload"] == '{"a": 1}'
    assert _is_recent(st["Operations"][0]["StartTimestamp"])

    cp = c.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=inv.token, Updates=_steps("s1", "s2", "s3")
    )
    token = cp["CheckpointToken"]
    assert token and token != inv.token
    ops = {o["Id"]: o for o in cp["NewExecutionState"]["Operations"]}
    assert {"s1", "s2", "s3"} <= set(ops)
    assert ops["s2"]["Status"] == "SUCCEEDED" and ops["s2"]["StepDetails"]["Result"] == "1"
    assert _is_recent(ops["s2"]["EndTimestamp"])

    with pytest.raises(c.exceptions.InvalidParameterValueException) as stale:
        c.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=inv.token, Updates=[])
    assert stale.value.response["Error"]["Message"].startswith("Invalid checkpoint token")
    with pytest.raises(c.exceptions.InvalidParameterValueException) as stale_state:
        c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=inv.token)
    assert stale_state.value.response["Error"]["Message"].startswith("Invalid checkpoint token")

    # State pages (MaxItems, Marker) and the paginator.
    p1 = c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=token, MaxItems=2)
    assert [o["Id"] for o in p1["Operations"]] == [eid, "s1"] and p1["NextMarker"]
    p2 = c.get_durable_execution_state(
        DurableExecutionArn=arn, CheckpointToken=token, MaxItems=2, Marker=p1["NextMarker"]
    )
    assert [o["Id"] for o in p2["Operations"]] == ["s2", "s3"] and "NextMarker" not in p2
    paginator = c.get_paginator("get_durable_execution_state")
    assert [
        o["Id"]
        for p in paginator.paginate(DurableExecutionArn=arn, CheckpointToken=token, PaginationConfig={"PageSize": 3})
        for o in p["Operations"]
    ] == [eid, "s1", "s2", "s3"]
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=token, Marker="bm90IGEgbWFya2Vy")

    # A rejected batch changes nothing: the token stays valid.
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        api_manual.loose.checkpoint_durable_execution(
            DurableExecutionArn=arn,
            CheckpointToken=token,
            Updates=[*_steps("s4"), {"Id": "s5", "Type": "BOGUS", "Action": "START"}],
        )
    assert "s4" not in {
        o["Id"] for o in c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=token)["Operations"]
    }

    # ClientToken: the same request again returns the stored response and applies nothing.
    first = c.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=token, Updates=_steps("s4"), ClientToken="ct-1"
    )
    again = c.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=token, Updates=_steps("s4"), ClientToken="ct-1"
    )
    assert first["CheckpointToken"] == again["CheckpointToken"]
    assert first["NewExecutionState"] == again["NewExecutionState"]
    assert types(api_manual.history(arn)).count("StepSucceeded") == 4

    ds.control.end_invocation(inv, InvocationOutcome.from_envelope({"Status": "SUCCEEDED", "Result": "2"}))
    assert api_manual.status(arn) == "SUCCEEDED"
    with pytest.raises(c.exceptions.InvalidParameterValueException) as closed:
        c.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=first["CheckpointToken"], Updates=[])
    assert closed.value.response["Error"]["Message"].startswith("Invalid checkpoint token")


# --- the real SDK over HTTP, in a separate process ----------------------------------------------------

RUNNER = r"""
import importlib, json, sys, time
module, attr, event_path, out_path, request_id, function = sys.argv[1:7]

class Context:
    aws_request_id = request_id
    function_name = function
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function + ":$LATEST"
    memory_limit_in_mb = 512
    tenant_id = None
    log_group_name = "/aws/lambda/" + function
    log_stream_name = "test"
    client_context = None
    identity = None
    def get_remaining_time_in_millis(self):
        return 300_000

handler = getattr(importlib.import_module(module), attr)
with open(event_path) as f:
    event = json.load(f)
out = handler(event, Context())
with open(out_path, "w") as f:
    json.dump(out, f)
"""


def _run_in_subprocess(api: Api, inv: InvocationInput, tmp_path: Path, first_page: int | None = None) -> Any:
    """One invocation of the handler in another process; the SDK reaches the server only
    through boto3 (AWS_ENDPOINT_URL_LAMBDA). The invocation input is the JSON event of
    docs/protocol.md#invocation-event (operation timestamps in epoch ms)."""
    ops, marker = inv.operations, inv.next_marker
    if first_page is not None:
        # A short first page makes the SDK fetch the rest with GetDurableExecutionState.
        page = api.ds.control.get_state(inv.arn, inv.token, None, first_page)
        ops, marker = page["Operations"], page.get("NextMarker", "")
    event = {
        "DurableExecutionArn": inv.arn,
        "CheckpointToken": inv.token,
        "InitialExecutionState": {"Operations": ops, "NextMarker": marker},
        "UpdatedOperationIds": inv.updated_operation_ids,
    }
    event_path = tmp_path / f"event-{inv.request_id}.json"
    out_path = tmp_path / f"out-{inv.request_id}.json"
    event_path.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ENDPOINT_URL_LAMBDA": api.url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join([HANDLERS, REPO]),
        }
    )
    module, _, attr = inv.function.handler.partition(":")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, module, attr, str(event_path), str(out_path), inv.request_id, inv.function.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    envelope = json.loads(out_path.read_text())
    api.ds.control.end_invocation(inv, InvocationOutcome.from_envelope(envelope))
    return envelope


def _begin(api: Api, arn: str) -> InvocationInput:
    return wait_until(
        lambda: api.ds.control.begin_invocation(_execution_id(arn), "subprocess-test"), 10, "no invocation owed"
    )


def test_sdk_checkpoints_over_http_from_another_process(api_manual: Api, tmp_path: Path) -> None:
    arn = api_manual.start("api-steps", {"n": 4})
    envelope = _run_in_subprocess(api_manual, _begin(api_manual, arn), tmp_path)
    assert envelope["Status"] == "SUCCEEDED", envelope
    expected = {"first": 8, "second": 9, "third": 90}
    assert json.loads(envelope["Result"]) == expected
    d = api_manual.client.get_durable_execution(DurableExecutionArn=arn)
    assert d["Status"] == "SUCCEEDED" and json.loads(d["Result"]) == expected
    h = types(api_manual.history(arn))
    assert h.count("StepSucceeded") == 3 and h.count("ContextSucceeded") == 1
    assert h[-2:] == ["InvocationCompleted", "ExecutionSucceeded"]
    checkpoints = [p for m, p in api_manual.requests if m == "POST" and p.endswith("/checkpoint")]
    assert checkpoints and all(enc(arn) in p for p in checkpoints)


def test_sdk_pages_state_and_resumes_after_a_callback_over_http(api_manual: Api, tmp_path: Path) -> None:
    arn = api_manual.start("api-callback", {"base": "b"})
    first = _run_in_subprocess(api_manual, _begin(api_manual, arn), tmp_path)
    assert first == {"Status": "PENDING"}
    cid = api_manual.callback_id(arn)
    api_manual.client.send_durable_execution_callback_success(CallbackId=cid, Result=b'"yes"')
    before = len(api_manual.requests)
    second = _run_in_subprocess(api_manual, _begin(api_manual, arn), tmp_path, first_page=1)
    # SDK 3.0.0 hands the callback's raw payload to the handler (no JSON decoding).
    assert second["Status"] == "SUCCEEDED" and json.loads(second["Result"]) == 'b:"yes"'
    state_calls = [p for m, p in api_manual.requests[before:] if m == "GET" and "/state?" in p]
    assert state_calls, "the SDK did not page the state over HTTP"
    assert api_manual.status(arn) == "SUCCEEDED"
    assert types(api_manual.history(arn)).count("InvocationCompleted") == 2


# --- pause / resume / delete ----------------------------------------------------------------------


def _need(method: str) -> None:
    if not hasattr(ControlPlane, method):
        pytest.skip(f"ControlPlane.{method} does not exist yet")


def test_pause_and_resume(api: Api) -> None:
    _need("pause_execution")
    _need("resume_execution")
    arn = api.start("api-sleeps", {"seconds": 600})
    wait_until(lambda: types(api.history(arn))[-1:] == ["InvocationCompleted"], 30, "not suspended")
    r = api.client.pause_durable_execution(DurableExecutionArn=arn, Reason="maintenance", ExecutionTimeoutPaused=False)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    d = api.wait_status(arn, "PAUSED")
    assert d["PauseDetails"]["Reason"] == "maintenance"
    assert d["PauseDetails"]["ExecutionTimeoutPaused"] is False
    assert _is_recent(d["PauseDetails"]["PauseRequestTimestamp"])
    assert "ExecutionPaused" in types(api.history(arn))
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.loose.pause_durable_execution(DurableExecutionArn=arn, ExecutionTimeoutPaused="yes")
    with pytest.raises(api.client.exceptions.InvalidParameterValueException):
        api.client.pause_durable_execution(DurableExecutionArn=arn, Reason="x" * 1025)
    r = api.client.resume_durable_execution(DurableExecutionArn=arn, Reason="done")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    api.wait_status(arn, "RUNNING")
    assert "ExecutionResumed" in types(api.history(arn))
    with pytest.raises(api.client.exceptions.ResourceConflictException):
        api.client.resume_durable_execution(DurableExecutionArn=arn)
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.pause_durable_execution(DurableExecutionArn=arn.rsplit("/", 1)[0] + "/unknown-id")


def test_delete_durable_execution(api: Api) -> None:
    _need("delete_execution")
    arn = api.start("api-sleeps", {"seconds": 600})
    with pytest.raises(api.client.exceptions.ResourceConflictException):
        api.client.delete_durable_execution(DurableExecutionArn=arn)
    wait_until(lambda: types(api.history(arn))[-1:] == ["InvocationCompleted"], 30, "not suspended")
    api.client.stop_durable_execution(DurableExecutionArn=arn)
    r = api.client.delete_durable_execution(DurableExecutionArn=arn)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202 and _is_recent(r["DeletionRequestTimestamp"])
    wait_until(lambda: _not_found(api, arn), 30, "execution still there after delete")
    with pytest.raises(api.client.exceptions.ResourceNotFoundException):
        api.client.delete_durable_execution(DurableExecutionArn=arn.rsplit("/", 1)[0] + "/unknown-id")


def _not_found(api: Api, arn: str) -> bool:
    try:
        api.client.get_durable_execution(DurableExecutionArn=arn)
        return False
    except api.client.exceptions.ResourceNotFoundException:
        return True


def test_pause_resume_delete_answer_an_aws_error_until_the_control_plane_has_them(
    api_manual: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("pause_execution", "resume_execution", "delete_execution"):
        monkeypatch.delattr(ControlPlane, name, raising=False)
    arn = api_manual.start("add-one", {})
    for call in (
        lambda: api_manual.client.pause_durable_execution(DurableExecutionArn=arn),
        lambda: api_manual.client.resume_durable_execution(DurableExecutionArn=arn),
        lambda: api_manual.client.delete_durable_execution(DurableExecutionArn=arn),
    ):
        with pytest.raises(api_manual.client.exceptions.ServiceException) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        assert "not supported" in err.value.response["Error"]["Message"]


# --- routing and the error shape for requests boto3 cannot make --------------------------------------


# The HTTP status and message member of each 4xx this API sends (docs/protocol.md#rest-api).
AWS_ERRORS = {
    "InvalidParameterValueException": (400, "message"),
    "InvalidRequestContentException": (400, "message"),
    "CallbackTimeoutException": (400, "Message"),
    "ResourceNotFoundException": (404, "Message"),
    "ResourceConflictException": (409, "message"),
    "DurableExecutionAlreadyStartedException": (409, "Message"),
    "RequestTooLargeException": (413, "message"),
    "TooManyRequestsException": (429, "message"),
}


def assert_aws_error_shape(result: tuple[int, dict[str, str], Any], what: str) -> str:
    """A 4xx in the AWS shape: ``x-amzn-ErrorType``, its status, a JSON body with ``Type`` and
    the message member the model spells, and a request id. Returns the error type."""
    status, headers, body = result
    error_type = headers.get("x-amzn-errortype")
    assert error_type in AWS_ERRORS, (what, status, headers, body)
    expected_status, message_key = AWS_ERRORS[error_type]
    assert status == expected_status, (what, status, error_type, body)
    assert headers.get("x-amzn-requestid"), what
    assert isinstance(body, dict) and body.get("Type") == error_type, (what, body)
    assert isinstance(body.get(message_key), str) and body[message_key], (what, body)
    return error_type


def _assert_aws_error(result: tuple[int, dict[str, str], Any], status: int, error_type: str, what: str) -> None:
    assert (result[0], result[1].get("x-amzn-errortype")) == (status, error_type), (what, result)
    assert_aws_error_shape(result, what)


def _b64(data: Any) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_bad_requests_get_the_aws_error_shape(api_manual: Api) -> None:
    arn = api_manual.start("add-one", {"a": 1})
    inv = api_manual.ds.control.begin_invocation(_execution_id(arn), "errors-test")
    assert inv is not None
    ex = f"/2025-12-01/durable-executions/{enc(arn)}"
    unknown_arn = enc(arn.rsplit("/", 1)[0] + "/unknown-id")
    json_h = {"Content-Type": "application/json"}
    ipve, rnf = "InvalidParameterValueException", "ResourceNotFoundException"
    cases: list[tuple[str, str, bytes | str | None, dict[str, str], int, str]] = [
        ("GET", "/2025-12-01/nothing-here", None, {}, 404, rnf),
        ("GET", "/not-an-api-path", None, {}, 404, rnf),
        ("GET", "/2015-03-31/functions/add-one/invocations", None, {}, 404, rnf),
        ("PUT", f"{ex}/checkpoint", b"{}", json_h, 404, rnf),
        ("GET", f"{ex}/bogus-action", None, {}, 404, rnf),
        ("POST", "/2025-12-01/durable-execution-callbacks/abc/bogus", b"", {}, 404, rnf),
        ("GET", "/2025-12-01/durable-execution-callbacks/abc/succeed", None, {}, 404, rnf),
        ("GET", "/2025-12-01/durable-executions/not-an-arn", None, {}, 400, ipve),
        ("GET", f"/2025-12-01/durable-executions/{unknown_arn}", None, {}, 404, rnf),
        ("POST", f"{ex}/checkpoint", "{not json", json_h, 400, ipve),
        ("POST", f"{ex}/checkpoint", "[1, 2]", json_h, 400, ipve),
        ("POST", f"{ex}/checkpoint", b"\xff\xfe\x00", json_h, 400, ipve),
        ("POST", f"{ex}/checkpoint", "[" * 100_000, json_h, 400, ipve),
        ("POST", f"{ex}/checkpoint", json.dumps({"CheckpointToken": 5}), json_h, 400, ipve),
        ("POST", f"{ex}/checkpoint", json.dumps({"CheckpointToken": inv.token, "Updates": "x"}), json_h, 400, ipve),
        (
            "POST",
            f"{ex}/checkpoint",
            json.dumps({"CheckpointToken": inv.token, "Updates": [{"Id": 1}]}),
            json_h,
            400,
            ipve,
        ),
        (
            "POST",
            f"{ex}/checkpoint",
            json.dumps({"CheckpointToken": inv.token, "Updates": [], "ClientToken": ["x"]}),
            json_h,
            400,
            ipve,
        ),
        ("POST", f"{ex}/checkpoint", b"{" + b" " * (7 * 1024 * 1024) + b"}", json_h, 413, "RequestTooLargeException"),
        ("POST", f"{ex}/stop", b" " * (6 * 1024 * 1024 + 1), json_h, 413, "RequestTooLargeException"),
        ("POST", f"{ex}/stop", "[]", json_h, 400, ipve),
        ("POST", f"{ex}/stop", json.dumps({"Bogus": 1}), json_h, 400, ipve),
        ("POST", f"{ex}/stop", json.dumps({"StackTrace": "not a list"}), json_h, 400, ipve),
        ("GET", f"{ex}/history?MaxItems=abc", None, {}, 400, ipve),
        ("GET", f"{ex}/history?MaxItems=5000", None, {}, 400, ipve),
        ("GET", f"{ex}/history?MaxItems=-1", None, {}, 400, ipve),
        ("GET", f"{ex}/history?Marker=%25%25%25", None, {}, 400, ipve),
        ("GET", f"{ex}/history?Marker={enc(_b64({'p': 10**30}))}", None, {}, 400, ipve),
        ("GET", f"{ex}/history?Marker={enc(_b64({'p': -1}))}", None, {}, 400, ipve),
        (
            "GET",
            f"/2025-12-01/functions/add-one/durable-executions?Marker={enc(_b64({'s': 10**30, 'i': 'x'}))}",
            None,
            {},
            400,
            ipve,
        ),
        (
            "GET",
            f"{ex}/state?CheckpointToken={enc(inv.token)}&Marker={enc(_b64({'t': 'x', 's': 10**30}))}",
            None,
            {},
            400,
            ipve,
        ),
        ("GET", f"{ex}/history?IncludeExecutionData=maybe", None, {}, 400, ipve),
        ("GET", f"{ex}/history?ReverseOrder=2", None, {}, 400, ipve),
        ("GET", f"{ex}/history?MaxItems=1&MaxItems=2", None, {}, 400, ipve),
        ("GET", f"{ex}?IncludeExecutionData=nope", None, {}, 400, ipve),
        ("GET", f"{ex}/state", None, {}, 400, ipve),
        ("GET", f"{ex}/state?CheckpointToken={enc(inv.token)}&MaxItems=x", None, {}, 400, ipve),
        ("GET", "/2025-12-01/functions/add-one/durable-executions?StartedBefore=1e400", None, {}, 400, ipve),
        (
            "GET",
            "/2025-12-01/functions/add-one/durable-executions?StartedBefore=99999999999999999",
            None,
            {},
            400,
            ipve,
        ),
        ("GET", "/2025-12-01/functions/add-one/durable-executions?Statuses=BOGUS", None, {}, 400, ipve),
        ("GET", "/2025-12-01/functions/add-one/durable-executions?DurableExecutionName=a%20b", None, {}, 400, ipve),
        ("GET", "/2025-12-01/functions/bad%20name%21/durable-executions", None, {}, 404, rnf),
        ("POST", "/2015-03-31/functions/add-one/invocations", "nope", {}, 400, "InvalidRequestContentException"),
        ("POST", "/2015-03-31/functions/add-one/invocations", "{}", {"X-Amz-Invocation-Type": "Bogus"}, 400, ipve),
        (
            "POST",
            "/2015-03-31/functions/add-one/invocations",
            b" " * (6 * 1024 * 1024 + 1),
            {},
            413,
            "RequestTooLargeException",
        ),
        ("POST", "/2025-12-01/durable-execution-callbacks/%21%21/succeed", b"1", {}, 400, ipve),
        ("POST", f"/2025-12-01/durable-execution-callbacks/{'A' * 1025}/heartbeat", b"", {}, 400, ipve),
        ("POST", "/2025-12-01/durable-execution-callbacks/QUJD/fail", "[]", json_h, 400, ipve),
    ]
    for method, path, body, headers, status, error_type in cases:
        _assert_aws_error(api_manual.raw(method, path, body, headers), status, error_type, f"{method} {path[:120]}")
    # Nothing above changed the execution: its token still works.
    ok = api_manual.client.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=inv.token, Updates=[])
    assert ok["CheckpointToken"]
    assert types(api_manual.history(arn)) == ["ExecutionStarted"]


def start_callback(ds: Durascope, arn: str, token: str, op_id: str = "cb") -> tuple[str, str]:
    """A CALLBACK START checkpointed by hand: (the next checkpoint token, the callback id)."""
    out = ds.control.checkpoint(
        arn, token, [{"Id": op_id, "Type": "CALLBACK", "Action": "START", "SubType": "Callback", "Name": op_id}]
    )
    return out["CheckpointToken"], out["NewExecutionState"]["Operations"][-1]["CallbackDetails"]["CallbackId"]


def _refused(call: Callable[[], Any], api: Api, arns: list[str], match: str | None = None) -> None:
    """``call`` gets InvalidParameterValueException and the executions' histories stay as they were."""
    before = [api.history(a) for a in arns]
    with pytest.raises(api.client.exceptions.InvalidParameterValueException) as err:
        call()
    if match:
        assert match in err.value.response["Error"]["Message"], err.value.response
    assert [api.history(a) for a in arns] == before


def test_markers_with_deeply_nested_json_are_refused(api_manual: Api) -> None:
    # Found by the fuzz (test_api_fuzz.py): the JSON decoder hit its recursion limit (a 500).
    c = api_manual.loose
    arn = api_manual.start("add-one", {"a": 1})
    inv = _begin(api_manual, arn)
    deep = base64.b64encode(b"[" * 5000).decode()
    nested = base64.b64encode(json.dumps({"p": [1]}).encode()).decode()
    for marker in (deep, nested):
        _refused(
            lambda marker=marker: c.get_durable_execution_history(DurableExecutionArn=arn, Marker=marker),
            api_manual,
            [arn],
            "Invalid Marker",
        )
        _refused(
            lambda marker=marker: c.get_durable_execution_state(
                DurableExecutionArn=arn, CheckpointToken=inv.token, Marker=marker
            ),
            api_manual,
            [arn],
            "Invalid Marker",
        )
        _refused(
            lambda marker=marker: c.list_durable_executions_by_function(FunctionName="add-one", Marker=marker),
            api_manual,
            [arn],
            "Invalid Marker",
        )


def test_update_fields_of_the_wrong_type_or_with_a_trailing_newline_are_refused(api_manual: Api) -> None:
    # Found by the fuzz: a list as Type was a 500 (unhashable), and "^...$" patterns matched
    # a trailing newline, so "s1\n" was accepted as an operation Id.
    c = api_manual.loose
    arn = api_manual.start("approval", {})
    inv = _begin(api_manual, arn)
    token, callback_id = start_callback(api_manual.ds, arn, inv.token)
    step = {"Id": "s1", "Type": "STEP", "Action": "START", "SubType": "Step", "Name": "s"}
    for bad in (
        {"Type": ["STEP"]},
        {"Action": {"START": 1}},
        {"Id": "s1\n"},
        {"ParentId": "p\n"},
        {"Name": "s\n"},
        {"SubType": "Step\n"},
    ):
        _refused(
            lambda bad=bad: c.checkpoint_durable_execution(
                DurableExecutionArn=arn, CheckpointToken=token, Updates=[{**step, **bad}]
            ),
            api_manual,
            [arn],
            "Updates[0]",
        )
    _refused(lambda: c.send_durable_execution_callback_heartbeat(CallbackId=callback_id + "\n"), api_manual, [arn])
    _refused(lambda: c.pause_durable_execution(DurableExecutionArn=arn, ClientToken="tok\n"), api_manual, [arn])
    _refused(
        lambda: c.list_durable_executions_by_function(FunctionName="approval", DurableExecutionName="a\n"),
        api_manual,
        [arn],
    )
    assert c.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=token, Updates=[step])


def test_text_the_store_cannot_keep_is_refused_on_every_backend(api_manual: Api) -> None:
    # Found by the fuzz on PostgreSQL (its text cannot hold U+0000; ErrorType fills a
    # 256-character column): each was a 500 there, or a callback result the engine could
    # not record after the invocation. Refused alike on SQLite.
    c, ds = api_manual.loose, api_manual.ds
    arn = api_manual.start("approval", {})
    inv = _begin(api_manual, arn)
    token, _ = start_callback(ds, arn, inv.token)
    idle = api_manual.start("approval", {})
    idle_inv = _begin(api_manual, idle)
    _, callback_id = start_callback(ds, idle, idle_inv.token)
    ds.control.end_invocation(idle_inv, InvocationOutcome.from_envelope({"Status": "PENDING"}))
    arns = [arn, idle]

    def checkpoint(*updates: dict[str, Any], **kw: Any) -> Any:
        return lambda: c.checkpoint_durable_execution(
            DurableExecutionArn=arn, CheckpointToken=token, Updates=list(updates), **kw
        )

    start = {"Id": "s1", "Type": "STEP", "Action": "START", "SubType": "Step", "Name": "s"}
    exec_id = _execution_id(arn)
    _refused(
        checkpoint(start, {"Id": "s1", "Type": "STEP", "Action": "SUCCEED", "Payload": "a\x00b"}),
        api_manual,
        arns,
        "NUL",
    )
    _refused(
        checkpoint({"Id": exec_id, "Type": "EXECUTION", "Action": "SUCCEED", "Payload": "\x00"}),
        api_manual,
        arns,
        "NUL",
    )
    _refused(
        checkpoint(
            {
                "Id": "ci",
                "Type": "CHAINED_INVOKE",
                "Action": "START",
                "SubType": "ChainedInvoke",
                "Name": "ci",
                "Payload": "\x00",
                "ChainedInvokeOptions": {"FunctionName": "add-one"},
            }
        ),
        api_manual,
        arns,
        "NUL",
    )
    for error_type in ("a\x00", "x" * 257):
        _refused(
            checkpoint({"Id": exec_id, "Type": "EXECUTION", "Action": "FAIL", "Error": {"ErrorType": error_type}}),
            api_manual,
            arns,
            "ErrorType",
        )
        _refused(
            lambda error_type=error_type: c.stop_durable_execution(
                DurableExecutionArn=arn, Error={"ErrorType": error_type}
            ),
            api_manual,
            arns,
            "ErrorType",
        )
    for client_token in ("\x00", "a b"):
        _refused(checkpoint(start, ClientToken=client_token), api_manual, arns, "ClientToken")
    _refused(
        lambda: c.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"a\x00b"),
        api_manual,
        arns,
        "NUL",
    )
    # What is allowed still works: 256 characters of ErrorType, U+0000 escaped inside JSON text.
    c.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"a\\u0000b"')
    c.stop_durable_execution(DurableExecutionArn=arn, Error={"ErrorType": "x" * 256})
    assert c.get_durable_execution(DurableExecutionArn=arn)["Error"]["ErrorType"] == "x" * 256


def test_unencoded_slashes_in_labels_are_routed(api: Api) -> None:
    r = api.client.invoke(FunctionName="add-one", Payload=b'{"a": 1}')
    arn = r["DurableExecutionArn"]
    literal = arn.replace("$", "%24")  # "/" left as it is, as curl users write it
    status, _, body = api.raw("GET", f"/2025-12-01/durable-executions/{literal}")
    assert status == 200 and body["DurableExecutionArn"] == arn and body["Result"] == "2"
    assert isinstance(body["StartTimestamp"], float)  # epoch seconds on the wire
    status, _, body = api.raw("GET", f"/2025-12-01/durable-executions/{literal}/history?MaxItems=2")
    assert status == 200 and [e["EventId"] for e in body["Events"]] == [1, 2] and body["NextMarker"]
    status, _, body = api.raw("POST", "/2025-12-01/durable-execution-callbacks/ab/cd+/heartbeat", b"")
    assert status == 404 and body["Message"].endswith("ab/cd+")
