"""Where debugging starts: the failing operation, its real traceback (from its invocation's
log), its decoded input and result, and its own log lines — on the execution page and its
JSON twin, on SQLite and PostgreSQL; worker processes too."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

from recorder.api import Durascope
from recorder.config import Settings
from recorder.queries import LogEntry
from tests.conftest import HANDLERS, register
from viewer import create_app
from viewer.operation_logs import execution_trace, fold, operation_traces, split_records
from viewer.values import Value

TESTS = str(Path(__file__).parent)
WHEN = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
TICKET = uuid.UUID("12345678-1234-5678-1234-567812345678")


@durable_execution
def typed_results(event, context: DurableContext):
    """Step results in the SDK's extended types, then a chained-looking failure."""
    quote_ = context.step(
        lambda _: {
            "when": WHEN,
            "amount": Decimal("12.50"),
            "ticket": TICKET,
            "pair": (1, "two"),
            "blob": b"\x00\x01",
            "day": WHEN.date(),
        },
        name="quote",
    )

    def charge(_):
        raise ValueError(f"card declined for {quote_['amount']}")

    once = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)))
    return context.step(charge, name="charge", config=once)


@durable_execution
def stops_in_a_wait(event, context: DurableContext):
    context.step(lambda _: 1, name="before")
    context.wait(Duration.from_seconds(3600), name="long-pause")
    return "never"


def url(arn: str, page: str = "") -> str:
    return f"/executions/{quote(arn, safe='/:')}" + (f"/{page}" if page else "")


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def test_no_stack_trace_is_made_up() -> None:
    """The SDK sends no StackTrace for ordinary exceptions: none is shown, not ``()``."""
    from viewer.view_models.common import ErrorInfo

    assert ErrorInfo.of({"ErrorType": "ValueError", "ErrorMessage": "x"}).stack_trace == ()
    assert ErrorInfo.of({"ErrorType": "E", "StackTrace": []}).stack_trace == ()
    assert ErrorInfo.of({"ErrorType": "E", "StackTrace": ["  File a", "E: x"]}).stack_trace == ("  File a", "E: x")


def test_failed_attempts_carry_the_traceback_their_invocation_logged(ds: Durascope, client) -> None:
    register(ds, "doomed", "th_basic:always_fails")
    arn = ds.start("doomed", "{}", name="doomed")
    assert ds.wait(arn, 30).status == "FAILED"

    view = client.get("/api/v1" + url(arn)).get_json()
    [op] = view["operations"]
    first, second = op["attempts"]
    assert (first["invocation"], second["invocation"]) == (1, 2)
    for attempt in (first, second):
        assert attempt["error"]["stack_trace"] == []  # nothing invented
        assert attempt["trace"]["text"].startswith("Traceback (most recent call last):")
        assert 'raise RuntimeError("never works")' in attempt["trace"]["text"]
        assert attempt["trace"]["text"].rstrip().endswith("RuntimeError: never works")
    assert first["trace"]["request_id"] == view["invocations"][0]["request_id"]
    assert second["trace"]["request_id"] == view["invocations"][1]["request_id"]

    page = client.get(url(arn)).get_data(as_text=True)
    assert "Stack trace sent with the error" not in page and ">()<" not in page and "stack trace sent" not in page
    assert "Traceback, as invocation 1 logged it" in page and "Traceback, as invocation 2 logged it" in page
    link = f"{url(arn, 'logs')}?invocation=2#log-{second['trace']['line_id']}"
    assert f'href="{link}"' in page
    # The link lands on the line that holds the traceback.
    logs = client.get(f"{url(arn, 'logs')}?invocation=2").get_data(as_text=True)
    row = logs[logs.index(f'id="log-{second["trace"]["line_id"]}"') :]
    assert "never works" in row[:4000]

    # The failure panel: the failing step, its error, the traceback, its own log lines.
    failure = view["failure"]
    assert failure["op_id"] == op["id"] and [label for _, label in failure["path"]] == ["doomed"]
    assert failure["trace"]["line_id"] == second["trace"]["line_id"] and failure["invocation"] == 2
    assert len(failure["lines"]) == 2 and all("failed step for id" in ln["message"] for ln in failure["lines"])
    assert "Why it failed" in page and 'class="failing-op"' in page
    # The operation's log filter keeps its own lines (the SDK's, naming it), tracebacks folded in.
    mine = client.get("/api/v1" + url(arn, "logs") + f"?op={op['id']}").get_json()["rows"]
    assert len(mine) == 2 and all("Traceback (most recent call last)" in r["message"] for r in mine)


def test_decoded_results_with_labelled_types_and_the_raw_text(ds: Durascope, client) -> None:
    ds.register_function("typed", "test_viewer_debugging:typed_results", code_dir=TESTS)
    arn = ds.start("typed", "{}", name="typed")
    assert ds.wait(arn, 30).status == "FAILED"
    view = client.get("/api/v1" + url(arn)).get_json()
    quote_op = next(o for o in view["operations"] if o["name"] == "quote")
    result = quote_op["result"]
    assert result["encoding"] == "sdk" and result["raw"].startswith('{"t":"m"')
    decoded = json.loads(result["text"])
    assert decoded == {
        "when": "2026-03-01T12:30:00+00:00",
        "amount": 12.50,
        "ticket": str(TICKET),
        "pair": [1, "two"],
        "blob": "AAE=",
        "day": "2026-03-01",
    }
    assert '"amount": 12.50' in result["text"]  # a decimal keeps its digits
    assert {(t["path"], t["type"]) for t in result["types"]} == {
        ("$.when", "datetime"),
        ("$.amount", "decimal"),
        ("$.ticket", "uuid"),
        ("$.pair", "tuple"),
        ("$.blob", "bytes, base64"),
        ("$.day", "date"),
    }
    page = client.get(url(arn)).get_data(as_text=True)
    label = '<span class="xt" title="decoded from the SDK\'s datetime encoding">datetime</span>'
    assert "&#34;2026-03-01T12:30:00+00:00&#34;" + label in page
    assert "raw (as stored, the SDK's encoding)" in page
    assert "&#34;t&#34;:&#34;m&#34;" in page  # the raw text is one click away
    # The whole payload downloads decoded, or as stored.
    full = client.get(url(arn, "payload") + f"?kind=op-result&op={quote_op['id']}").get_data(as_text=True)
    assert json.loads(full)["when"] == "2026-03-01T12:30:00+00:00"
    raw = client.get(url(arn, "payload") + f"?kind=op-result&op={quote_op['id']}&raw=1").get_data(as_text=True)
    assert raw == result["raw"]
    # The failing step's error names the decoded amount; the panel shows its traceback.
    assert view["failure"]["op_id"] == next(o["id"] for o in view["operations"] if o["name"] == "charge")
    assert "card declined for 12.50" in view["failure"]["trace"]["text"]


def test_value_previews_decode_only_the_sdks_envelope() -> None:
    plain = Value.of('{"t": 1, "v": 2, "x": 3}')  # not an envelope: three keys
    assert plain.encoding == "json" and plain.raw is None
    unknown_tag = Value.of('{"t": "zz", "v": 2}')
    assert unknown_tag.encoding == "json"
    assert Value.of("not json").encoding == "text"
    broken = Value.of('{"t": "dt", "v": "not a date"}')  # a bad envelope stays as stored
    assert broken.encoding == "json" and "not a date" in broken.text
    big = Value.of(json.dumps({"t": "l", "v": [{"t": "d", "v": "1.5"}] * 5000}), limit=100)
    assert big.truncated and len(big.text) == 100 and all(s.offset <= 100 for s in big.types)


def test_open_operations_of_a_closed_execution_end_with_it(ds: Durascope, client) -> None:
    ds.register_function("stops", "test_viewer_debugging:stops_in_a_wait", code_dir=TESTS)
    arn = ds.start("stops", "{}", name="stopped-in-a-wait")
    # Suspended in the wait: its invocation has ended.
    ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(arn)), 30)
    ds.stop(arn, {"ErrorType": "Ops.Stop", "ErrorMessage": "not needed any more"})
    end = ds.wait(arn, 30).end_ms
    view = client.get("/api/v1" + url(arn)).get_json()
    wait = next(o for o in view["operations"] if o["name"] == "long-pause")
    assert wait["status"] == "STARTED" and wait["closed_by"] == "cancelled at stop" and wait["end_ms"] == end
    assert view["failure"]["status"] == "STOPPED" and view["failure"]["open_ops"] == [wait["id"]]
    assert view["gaps"][-1]["end_ms"] == end  # it waited until the stop, not "and counting"
    page = client.get(url(arn)).get_data(as_text=True)
    assert "Why it stopped" in page and "not needed any more" in page
    assert ">CANCELLED<" in page and "cancelled at stop" in page


def _entry(i: int, message: str, level: str = "STDOUT", request: str = "r1") -> LogEntry:
    return LogEntry(1_000 + i, level, None, message, request, None, i)


def test_tracebacks_a_worker_process_wrote_line_by_line() -> None:
    """Worker runtimes hand over their output line by line and glue the next record's header
    to a traceback's last line: the traceback is still found, and the next record too."""
    op = "1ced8f5be2db23a6"
    out = [
        "[ERROR]\t2026-12-05T13:43:01.854Z\tr1\t❌ failed step for id: 1ced8f5be2db23a6, name: doomed",
        "Traceback (most recent call last):",
        '  File "/x/step.py", line 228, in execute',
        "    raw_result: T = wrapped_user_func(step_context)",
        '  File "/app/handler.py", line 44, in attempt',
        '    raise RuntimeError("never works")',
        "RuntimeError: never works[ERROR]\t2026-12-05T13:43:01.861Z\tr1\tExecution failed",
        "aws_durable_execution_sdk_python.exceptions.DurableOperationError: never works",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/x/execution.py", line 297, in invoke_handler',
        "aws_durable_execution_sdk_python.exceptions.StepError: never works",
        "done: printed after",
    ]
    entries = [_entry(i, m, "ERROR" if m.startswith("[ERROR]") else "STDOUT") for i, m in enumerate(out)]
    lines = split_records(entries)
    [trace] = operation_traces(lines)[("r1", op)]
    assert trace.line_id == 0 and trace.text.splitlines()[0] == "Traceback (most recent call last):"
    assert trace.text.splitlines()[-1] == "RuntimeError: never works"
    failed = execution_trace(lines, "r1")
    assert failed is not None and failed.line_id == 6
    assert failed.text.splitlines()[-1] == "aws_durable_execution_sdk_python.exceptions.StepError: never works"
    assert "done: printed after" not in failed.text
    folded = fold(lines)
    assert [ln.text.split("\n", 1)[0] for ln in folded] == [
        "❌ failed step for id: 1ced8f5be2db23a6, name: doomed",
        "Execution failed",
        "done: printed after",
    ]
    # Another invocation's lines never join this one's traceback.
    other = split_records([entries[0], _entry(1, out[1], request="r2")])
    assert operation_traces(other) == {}


@pytest.fixture
def worker_site(database_url: str) -> Iterator[Durascope]:
    from viewer.server import build_server

    server, ds = build_server(
        Settings.from_env(database_url=database_url, worker_concurrency=1), port=0, invoker="workers"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ds
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


def test_worker_processes_tracebacks_reach_the_page(worker_site: Durascope) -> None:
    ds = worker_site
    ds.register_function("doomed", "th_basic.always_fails", code_dir=HANDLERS)
    arn = ds.start("doomed", "{}", name="doomed-in-a-worker")
    assert ds.wait(arn, 90).status == "FAILED"
    view = create_app(durascope=ds).test_client().get("/api/v1" + url(arn)).get_json()
    attempts = view["operations"][0]["attempts"]
    assert [a["invocation"] for a in attempts] == [1, 2]
    for a in attempts:
        assert a["trace"]["text"].startswith("Traceback (most recent call last):")
        assert a["trace"]["text"].splitlines()[-1] == "RuntimeError: never works"
    assert view["failure"]["trace"] is not None
