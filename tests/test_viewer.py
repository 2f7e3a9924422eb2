"""The viewer: execution list, execution page, Gantt, operations, events, logs, actions,
error pages and escaping — HTML pages and their /api/v1 twins, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from sqlalchemy import event as sa_event

from recorder.api import Durascope
from tests.conftest import register, submit_form
from viewer import create_app
from viewer.timeline import MAX_ROWS, build_timeline
from viewer.view_models.execution import ExecutionView, Gap, OperationView
from viewer.view_models.history_walk import Attempt, Invocation

TESTS = str(Path(__file__).parent)
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@durable_execution
def xss_handler(event, context: DurableContext):
    """Markup in a step name, a step result, the output and the error message."""
    context.step(lambda _: {"html": XSS}, name=XSS)
    print(XSS)
    raise RuntimeError(XSS)


def register_xss(d: Durascope) -> None:
    d.register_function("xss", "test_viewer:xss_handler", code_dir=TESTS)


def url(arn: str, page: str = "") -> str:
    return f"/executions/{quote(arn, safe='/:')}" + (f"/{page}" if page else "")


def api(arn: str, page: str = "") -> str:
    return "/api/v1" + url(arn, page)


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def html(resp) -> str:
    return resp.get_data(as_text=True)


# --- 1. executions list --------------------------------------------------------------------


def test_list_filters_sort_and_keyset_pages(ds: Durascope, client) -> None:
    register(ds, "add-one", "th_basic:add_one")
    register(ds, "doomed", "th_basic:always_fails")
    ok = [ds.start("add-one", json.dumps({"a": i}), name=f"ok-{i}") for i in range(5)]
    bad = [ds.start("doomed", "{}", name=f"bad-{i}") for i in range(2)]
    for arn in ok + bad:
        ds.wait(arn, 30)

    page = html(client.get("/"))
    assert all(f">ok-{i}<" in page for i in range(5)) and ">bad-0<" in page
    assert re.search(r"FAILED <b>2</b>", page) and re.search(r"SUCCEEDED <b>5</b>", page)

    data = client.get("/api/v1/executions?status=FAILED").get_json()
    assert {r["name"] for r in data["rows"]} == {"bad-0", "bad-1"}
    assert data["status_counts"] == {"FAILED": 2, "SUCCEEDED": 5}  # counts ignore the status filter
    assert {r["name"] for r in client.get("/api/v1/executions?function=add-one&q=ok-3").get_json()["rows"]} == {"ok-3"}
    assert {r["name"] for r in client.get("/api/v1/executions?error=StepError").get_json()["rows"]} == {
        "bad-0",
        "bad-1",
    }
    # Filtered HTML keeps the filters in the URL-driven form.
    page = html(client.get("/?status=FAILED&function=doomed"))
    assert ">bad-1<" in page and ">ok-1<" not in page and 'value="doomed" selected' in page

    # Start time range (inclusive, UTC), as dates and as ISO instants.
    first = ds.describe(ok[0]).start_ms
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first / 1000 + 3600))
    assert client.get(f"/api/v1/executions?to={iso}").get_json()["total"] == 7
    assert client.get(f"/api/v1/executions?from={iso}").get_json()["rows"] == []

    # Sort by duration, longest first: the failing executions waited for a retry.
    rows = client.get("/api/v1/executions?sort=duration").get_json()["rows"]
    assert rows[0]["name"].startswith("bad-")
    assert [r["duration_ms"] for r in rows] == sorted((r["duration_ms"] for r in rows), reverse=True)

    # Keyset pages: no OFFSET in any statement, no duplicates, every row once, in every sort.
    statements: list[str] = []
    offsets: list[object] = []

    def listener(conn, cursor, statement, params, context, many) -> None:
        statements.append(statement)
        if "OFFSET" in statement.upper():  # SQLite's dialect always writes "LIMIT ? OFFSET ?"
            offsets.append(params[-1])

    sa_event.listen(ds.db.read_engine, "before_cursor_execute", listener)
    try:
        for sort, order in (("start", "desc"), ("end", "asc"), ("duration", "desc")):
            seen, cursor = [], ""
            for _ in range(10):
                data = client.get(f"/api/v1/executions?limit=2&sort={sort}&order={order}&cursor={cursor}").get_json()
                seen += [r["name"] for r in data["rows"]]
                cursor = data["next_cursor"]
                if not cursor:
                    break
            assert sorted(seen) == sorted([f"ok-{i}" for i in range(5)] + ["bad-0", "bad-1"]), (sort, seen)
    finally:
        sa_event.remove(ds.db.read_engine, "before_cursor_execute", listener)
    assert any("execution_id <" in s or "execution_id >" in s for s in statements)  # the keyset
    assert set(offsets) <= {0}  # never skips rows with OFFSET
    page = html(client.get("/?limit=2"))
    assert 'rel="next"' in page

    # A cursor issued for other filters, a damaged one, bad dates and statuses: 400s.
    cursor = client.get("/api/v1/executions?limit=2").get_json()["next_cursor"]
    for query in (
        f"status=FAILED&cursor={cursor}",
        "cursor=%%%",
        "from=yesterday",
        "status=BOGUS",
        "sort=name",
        "limit=0",
        "from=2026-02-01&to=2026-01-01",
    ):
        resp = client.get(f"/?{query}")
        assert resp.status_code == 400 and resp.mimetype == "text/html", query
        assert "Bad request" in html(resp)
        resp = client.get(f"/api/v1/executions?{query}")
        assert resp.status_code == 400 and resp.get_json()["error"]["status"] == 400, query


# --- 2-4. execution page, actions, Gantt, operations --------------------------------------------


def test_execution_page_callback_and_stop(ds: Durascope, client) -> None:
    register(ds, "approval", "th_basic:approval")
    register(ds, "waits", "th_basic:waits")
    arn = ds.start("approval", json.dumps({"timeout": 300, "heartbeat": 120}), name="needs-approval")
    ds.wait_for(lambda: client.get(api(arn)).get_json()["callbacks"], 30)
    # Suspended: the first invocation has ended. A callback sent before that (the SDK idles
    # ~100 ms after its last checkpoint) resumes it without a gap to show below.
    ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(arn)), 30)

    view = client.get(api(arn)).get_json()
    assert view["status"] == "RUNNING" and view["function"] == "approval" and view["version"] == "$LATEST"
    [cb] = view["callbacks"]
    assert cb["timeout_due_ms"] and cb["heartbeat_due_ms"]
    kinds = {w["kind"] for w in view["waiting_on"]}
    assert {"callback", "execution-timeout"} <= kinds
    page = html(client.get(url(arn)))
    assert 'id="waiting"' in page and "Send success" in page and "Stop execution" in page
    assert "heartbeat due" in page

    # Invalid JSON: refused in place, nothing sent, the execution keeps waiting.
    resp = submit_form(
        client,
        url(arn),
        url(arn, "callback"),
        {"callback_id": cb["callback_id"], "action": "success", "payload": "{not json"},
    )
    assert resp.status_code == 400 and "Payload is not valid JSON" in html(resp)
    assert "{not json" in html(resp)  # the typed text stays in the form
    assert ds.describe(arn).status == "RUNNING"
    # An unknown callback id: the service error shows in place too.
    resp = submit_form(client, url(arn), url(arn, "callback"), {"callback_id": "QUJD", "action": "heartbeat"})
    assert resp.status_code == 400 and 'class="form-error"' in html(resp)

    resp = submit_form(
        client, url(arn), url(arn, "callback"), {"callback_id": cb["callback_id"], "action": "heartbeat"}
    )
    assert resp.status_code == 303
    resp = submit_form(
        client,
        url(arn),
        url(arn, "callback"),
        {"callback_id": cb["callback_id"], "action": "success", "payload": '{"approved": true}'},
    )
    assert resp.status_code == 303 and "notice=callback-success" in resp.headers["Location"]
    assert ds.wait(arn, 30).status == "SUCCEEDED"
    page = html(client.get(resp.headers["Location"]))
    assert "Callback success sent." in page and "&#34;approved&#34;: true" in page
    assert 'id="waiting"' not in page  # nothing to wait on once done

    # history.json: every page joined, identical to the AWS history.
    resp = client.get(url(arn, "history.json"))
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert resp.get_json()["Events"] == ds.history(arn)

    # Active vs suspended time: invocations from InvocationCompleted, the rest is suspension.
    view = client.get(api(arn)).get_json()
    assert len(view["invocations"]) == 2 and view["event_count"] == len(ds.history(arn))
    assert view["active_ms"] + view["suspended_ms"] == view["duration_ms"]
    assert view["gaps"] and "callback 'approval" in view["gaps"][0]["reasons"][0]

    # Stop from the page (POST form), then the waiting panel is gone.
    waiting = ds.start("waits", json.dumps({"seconds": 3600}), name="long")
    ds.wait_for(lambda: any(w["kind"] == "wait" for w in client.get(api(waiting)).get_json()["waiting_on"]), 30)
    assert "wait &#39;pause&#39;" in html(client.get(url(waiting)))
    resp = submit_form(client, url(waiting), url(waiting, "stop"))
    assert resp.status_code == 303
    assert ds.wait(waiting, 30).status == "STOPPED"
    assert "Stop execution" not in html(client.get(url(waiting)))


def test_retries_timeline_operations_and_first_failure(ds: Durascope, client) -> None:
    register(ds, "doomed", "th_basic:always_fails")
    register(ds, "flaky", "th_basic:flaky")
    arn = ds.start("doomed", "{}", name="doomed-1")
    good = ds.start("flaky", json.dumps({"key": f"k{time.time_ns()}"}), name="flaky-1")
    assert ds.wait(arn, 30).status == "FAILED" and ds.wait(good, 30).status == "SUCCEEDED"

    view = client.get(api(arn)).get_json()
    [op] = view["operations"]
    assert [a["outcome"] for a in op["attempts"]] == ["retrying", "failed"]
    assert op["attempts"][0]["retry_delay_s"] == 1 and op["attempts"][0]["error"]["message"] == "never works"
    assert view["first_failure_op"] == op["id"] and view["error"]["message"] == "never works"
    assert "retry of step 'doomed' after 1s" in view["gaps"][0]["reasons"]
    page = html(client.get(url(arn)))
    assert f'href="#op-{op["id"]}"' in page and "Jump to the first failure" in page
    assert f'id="op-{op["id"]}"' in page and "never works" in page and "RuntimeError" in page
    # Scripts come from the app itself (no library, no CDN).
    scripts = set(re.findall(r'<script src="([^"]+)"', page))
    assert scripts == {"/static/localtime.js", "/static/copy.js", "/static/execution.js"}
    assert "cdn" not in page.lower()

    t = client.get(api(arn, "timeline")).get_json()
    assert [b["text"] for b in t["invocations"]] == ["1", "2"] or len(t["invocations"]) == 2
    assert "retry of step 'doomed' after 1s" in t["gaps"][0]["title"]
    [row] = t["rows"]
    assert row["label"] == "doomed" and row["kind"] == "step" and row["state"] == "failed" and row["failing"]
    assert [b["state"] for b in row["bars"]] == ["retrying", "delay", "failed"]
    assert "attempt 1 retrying" in row["bars"][0]["title"] and "never works" in row["bars"][0]["title"]
    # Clicking a bar opens the operation.
    assert {b["target"] for b in row["bars"]} == {f"op:{op['id']}"}
    assert f'href="#op-{op["id"]}"' in page and 'class="tl"' in page

    good_view = client.get(api(good)).get_json()
    assert [a["outcome"] for a in good_view["operations"][0]["attempts"]] == ["retrying", "retrying", "succeeded"]
    assert good_view["result"]["text"] == '{\n  "ok": 3\n}'


def _synthetic(n_ops: int, n_inv: int) -> ExecutionView:
    invs = tuple(Invocation(i + 1, i * 1000, i * 1000 + 100, f"r{i}", i) for i in range(n_inv))
    gaps = tuple(Gap(i * 1000 + 100, (i + 1) * 1000, (f"wait 'w{i}'",), False) for i in range(n_inv - 1))
    ops = [
        OperationView(
            id="map",
            parent_id=None,
            depth=0,
            name="map",
            type="CONTEXT",
            sub_type="Map",
            status="SUCCEEDED",
            start_ms=0,
            end_ms=n_inv * 1000,
            child_count=n_ops - 1,
        )
    ]
    for i in range(n_ops - 1):
        attempt = Attempt(1, i, i + 5, "failed" if i % 7 == 0 else "succeeded", None, None, i)
        ops.append(
            OperationView(
                id=f"op{i}",
                parent_id="map",
                depth=1,
                name=f"item-{i}",
                type="STEP",
                sub_type="Step",
                status=attempt.outcome.upper(),
                start_ms=i,
                end_ms=i + 5,
                attempts=(attempt,),
            )
        )
    return ExecutionView(
        arn="arn",
        name="n",
        function="f",
        version="$LATEST",
        status="SUCCEEDED",
        input=None,
        result=None,
        error=None,
        start_ms=0,
        end_ms=n_inv * 1000,
        duration_ms=n_inv * 1000,
        active_ms=n_inv * 100,
        suspended_ms=n_inv * 900,
        event_count=10_000,
        invocations=invs,
        gaps=gaps,
        operations=tuple(ops),
        first_failure_op=None,
        first_failure_event=None,
        waiting_on=(),
        callbacks=(),
        parent_arn=None,
        now_ms=n_inv * 1000,
    )


def test_timeline_stays_readable_at_scale() -> None:
    view = _synthetic(5000, 300)
    t = build_timeline(view)
    assert t.rows_drawn <= MAX_ROWS and len(t.invocations) == 300
    [group] = t.rows
    assert group.label == "map" and group.kind == "map" and group.failing and group.open
    assert group.summary == "4,999 iterations: 4,284 succeeded · 715 failed"
    *drawn, summed = group.children
    assert summed.op_id is None and summed.label.startswith("+ ") and summed.stands_for == 4999 - len(drawn)
    # Failures are drawn first: every drawn failure, then the first children.
    assert sum(r.failing for r in drawn) == 10
    assert t.note and "summed up per parent" in t.note


def test_payload_preview_is_the_head_of_the_pretty_print() -> None:
    """The preview stops encoding at its cut, and is exactly the head of the full indented JSON."""
    from viewer.values import Value as Payload

    def full(raw: str, limit: int) -> Payload:
        try:
            pretty, is_json = json.dumps(json.loads(raw), indent=2, ensure_ascii=False), True
        except ValueError:
            pretty, is_json = raw, False
        return Payload(pretty[:limit], is_json, len(raw), len(pretty) > limit, "json" if is_json else "text")

    samples = [
        "1",
        "1.0e3",
        '"\\u00e9"',
        "NaN",
        "true",
        "null",
        "[]",
        " 12 ",
        "not json",
        XSS,
        json.dumps({"a": [1, 2, {"b": "é"}], "c": {}}),
        json.dumps({"k": ["x" * 100] * 500}),
        json.dumps(list(range(3000))),
        json.dumps("y" * 5000),
        json.dumps({"a" * 3990: 1}),
    ]
    for raw in samples:
        for limit in (4000, 10, 1):
            assert Payload.of(raw, limit) == full(raw, limit), (raw[:40], limit)
    assert Payload.of({"not": "text"}) == full(json.dumps({"not": "text"}), 4000)


def test_imported_large_history_on_the_page(ds: Durascope, client) -> None:
    """A synthetic history (the benchmark's) read through the page's lean queries: every
    invocation, attempt and event is accounted for."""
    from recorder.synthetic import T0, synthetic
    from recorder.transfer import import_histories, parse_history

    doc = synthetic("imported", 2_000, T0)
    import_histories(ds.db, [parse_history(doc, "synthetic")])
    arn, events = doc["DurableExecutionArn"], doc["Events"]
    view = client.get(api(arn)).get_json()
    assert view["event_count"] == len(events) and view["status"] == "SUCCEEDED"
    inv = [e for e in events if e["EventType"] == "InvocationCompleted"]
    assert [i["request_id"] for i in view["invocations"]] == [e["InvocationCompletedDetails"]["RequestId"] for e in inv]
    assert len(view["gaps"]) == len(inv) - 1
    steps = [o for o in view["operations"] if o["type"] == "STEP"]
    assert len(steps) == len({e["Id"] for e in events if e["EventType"] == "StepStarted"})
    retried = next(o for o in steps if o["name"] == "step-3")
    assert [a["outcome"] for a in retried["attempts"]] == ["retrying", "succeeded"]
    assert retried["attempts"][0]["error"]["message"] == "flaky" and retried["attempts"][0]["retry_delay_s"] == 1
    assert view["first_failure_op"] == retried["id"]
    assert view["first_failure_event"] == next(e["EventId"] for e in events if e["EventType"] == "StepFailed")
    page = html(client.get(url(arn)))
    assert "Large history:" in page and f'id="op-{retried["id"]}"' in page
    assert client.get(url(arn, "payload") + f"?kind=op-result&op={retried['id']}").get_data(as_text=True) == "3"


def test_instants_render_in_utc_for_the_browser_to_localize(ds: Durascope, client) -> None:
    register(ds, "add-one", "th_basic:add_one")
    arn = ds.start("add-one", "{}", name="when")
    ds.wait(arn, 30)
    start = ds.describe(arn).start_ms
    utc = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start / 1000)) + f".{start % 1000:03d}"
    element = f'<time datetime="{utc.replace(" ", "T")}Z" title="{utc} UTC">{utc}</time>'
    for path in ("/", url(arn), url(arn, "events")):
        page = html(client.get(path))
        assert 'src="/static/localtime.js"' in page and '<span class="tz" id="tz">Times in UTC</span>' in page
        assert element in page, path
    page = html(client.get(url(arn, "logs")))
    # An <option> holds text only: its instant comes as data, its UTC text as the label.
    option = re.search(
        r'data-datetime="([0-9-]+)T([0-9:.]+)Z" data-label="1 · ">1 · ([0-9-]+) ([0-9:.]+)</option>', page
    )
    assert option and option.group(1, 2) == option.group(3, 4)
    assert "localize" in client.get("/static/localtime.js").get_data(as_text=True)


# --- 5-6. events and logs --------------------------------------------------------------------------


def test_events_table_and_logs(ds: Durascope, client) -> None:
    register(ds, "logs", "th_basic:logs_things")
    register(ds, "many", "th_basic:many_steps")
    arn = ds.start("logs", "{}", name="logger")
    assert ds.wait(arn, 30).status == "SUCCEEDED"

    page = html(client.get(url(arn, "logs")))
    assert "printed line" in page and "context logger line" in page
    assert "step logger line &lt;b&gt;markup&lt;/b&gt;" in page
    page = html(client.get(url(arn, "logs") + "?level=WARNING"))
    assert "step logger line" in page and "printed line" not in page
    data = client.get(api(arn, "logs") + "?invocation=1").get_json()
    assert data["rows"] and all(r["invocation"] == 1 for r in data["rows"])
    assert client.get(url(arn, "logs") + "?level=LOUD").status_code == 400
    assert client.get(url(arn, "logs") + "?invocation=9").status_code == 400

    steps = ds.start("many", json.dumps({"path": f"/tmp/viewer-{time.time_ns()}.txt", "n": 150}), name="steps")
    assert ds.wait(steps, 60).status == "SUCCEEDED"
    history = ds.history(steps)
    page = html(client.get(url(steps, "events")))
    assert 'id="event-1"' in page and 'id="event-200"' in page and 'id="event-201"' not in page
    assert f"{len(history):,} matching events" in page and "next events" in page
    page = html(client.get(url(steps, "events") + "?start=250"))
    assert 'id="event-250"' in page and 'id="event-249"' not in page
    assert f'href="{url(steps, "events")}?start=250#event-250"' in page  # deep link per event

    data = client.get(api(steps, "events") + "?type=StepSucceeded").get_json()
    assert data["matching"] == 150 and {e["type"] for e in data["events"]} == {"StepSucceeded"}
    raw = json.loads(data["events"][0]["raw"])
    assert raw == next(e for e in history if e["EventId"] == raw["EventId"])
    op = data["events"][3]["op_id"]
    data = client.get(api(steps, "events") + f"?op={op}").get_json()
    assert {e["op_id"] for e in data["events"]} == {op} and data["matching"] == 2
    data = client.get(api(steps, "events") + "?q=step-149").get_json()
    assert data["matching"] == 2
    assert client.get(url(steps, "events") + "?start=abc").status_code == 400

    # 150 steps: the Gantt groups what exceeds its lane budget and says so on the page.
    page = html(client.get(url(steps)))
    assert "Large history:" in page and "summed up per parent" in page


# --- errors and escaping ------------------------------------------------------------------------


def test_error_pages_keep_the_lambda_error_shape(ds: Durascope, client) -> None:
    missing = "arn:aws:lambda:us-east-1:123456789012:function:nope:$LATEST/durable-execution/x/abc"
    resp = client.get(url(missing))
    assert resp.status_code == 404 and resp.mimetype == "text/html" and "Not found" in html(resp)
    resp = client.get(api(missing))
    assert resp.status_code == 404 and resp.get_json()["error"]["status"] == 404
    resp = client.get("/executions/not-an-arn")
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    resp = client.get("/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.is_json and "error" in resp.get_json()
    resp = client.post("/")
    assert resp.status_code == 405 and resp.mimetype == "text/html"
    # Outside the viewer and inside the Lambda prefixes: still the AWS error shape.
    for path in ("/no-such-thing", "/2015-03-31/functions/nope/bogus"):
        resp = client.get(path)
        assert resp.headers.get("x-amzn-ErrorType"), path
        assert "Type" in resp.get_json(), path


def test_user_markup_is_always_escaped(ds: Durascope, client) -> None:
    register_xss(ds)
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("xss", json.dumps({"note": XSS}), name="xss-1")
    assert ds.wait(arn, 30).status == "FAILED"
    cb = ds.start("approval", json.dumps({"note": XSS}), name="xss-2")
    ds.wait_for(lambda: client.get(api(cb)).get_json()["callbacks"], 30)
    cb_id = client.get(api(cb)).get_json()["callbacks"][0]["callback_id"]

    pages = [
        "/",
        f"/?q={quote(XSS)}",
        f"/?error={quote(XSS)}",
        f"/?from={quote(XSS)}",
        url(arn),
        url(arn, "events"),
        url(arn, "logs"),
        url(arn, "events") + f"?q={quote(XSS)}",
        url(cb),
        f"/executions/{quote(XSS)}",
    ]
    for path in pages:
        body = html(client.get(path))
        assert "<script>alert" not in body and "<img src=x" not in body, path
    # The step name, result, output and error are there, escaped.
    body = html(client.get(url(arn)))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body
    # In the timeline too (a label and a bar's hover text).
    assert 'title="step &lt;script&gt;alert(&#39;x&#39;)' in body
    body = html(
        submit_form(client, url(cb), url(cb, "callback"), {"callback_id": cb_id, "action": "success", "payload": XSS})
    )
    assert "<script>alert" not in body and "&lt;script&gt;" in body
    body = html(submit_form(client, url(cb), url(cb, "callback"), {"callback_id": XSS, "action": "heartbeat"}))
    assert "<script>alert" not in body
    # The JSON twin returns the data as data.
    assert client.get(api(arn)).get_json()["error"]["message"] == XSS


def test_download_all_matching_executions_as_a_zip(database_url: str, tmp_path) -> None:
    """The list's "Download all" link exports exactly the filtered executions (issue: export buttons)."""
    import io
    import json as _json
    import zipfile

    from recorder.api import Durascope
    from tests.conftest import register
    from viewer import create_app

    ds = Durascope.open(database_url)
    try:
        register(ds, "add-one", "th_basic:add_one")
        register(ds, "doomed", "th_basic:always_fails")
        ok = [ds.start("add-one", "{}") for _ in range(3)]
        bad = ds.start("doomed", "{}")
        for arn in [*ok, bad]:
            ds.wait(arn, 60)
        app = create_app(durascope=ds)
        with app.test_client() as c:
            page = c.get("/?status=SUCCEEDED").get_data(as_text=True)
            assert "Download all 3" in page
            r = c.get("/export.zip?status=SUCCEEDED")
            assert r.status_code == 200 and r.mimetype == "application/zip"
            with zipfile.ZipFile(io.BytesIO(r.get_data())) as zf:
                manifest = _json.loads(zf.read("manifest.json"))
                assert sorted(m["DurableExecutionArn"] for m in manifest["Executions"]) == sorted(ok)
                doc = _json.loads(zf.read(manifest["Executions"][0]["File"]))
                assert doc["Events"] == ds.history(doc["DurableExecutionArn"])
            assert c.get("/export.zip?status=NOPE").status_code == 400
    finally:
        ds.close()
