"""Status-change events derived from the log (docs/protocol.md#status-changes): shape, ids, paging, SSE feed."""

from __future__ import annotations

import json
import re
import uuid

from recorder.api import Durascope
from tests.conftest import register
from viewer import create_app

ISO_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _run_mix(ds: Durascope) -> dict[str, str]:
    register(ds, "add-one", "th_basic.add_one")
    register(ds, "fails", "th_basic.always_fails")
    register(ds, "approval", "th_basic.approval")
    register(ds, "slow", "th_basic.approval", execution_timeout=1)
    arns = {
        "ok": ds.start("add-one", '{"a": 1}', name="vip-ok"),
        "fail": ds.start("fails", "{}", name="plain-fail"),
        "stop": ds.start("approval", "{}", name="vip-stop"),
        "timeout": ds.start("slow", "{}", name="plain-timeout"),
    }
    ds.wait(arns["ok"])
    ds.wait_for(lambda: ds.describe(arns["stop"]).status == "RUNNING" and len(ds.history(arns["stop"])) >= 3, 30)
    ds.stop(arns["stop"])
    ds.wait(arns["fail"], 60)
    ds.wait(arns["timeout"], 60)
    return arns


def _all(client, query: str = "") -> list[dict]:
    out, after = [], 0
    while True:
        r = client.get(f"/api/v1/status-changes?after={after}&limit=2{query}")
        assert r.status_code == 200, r.data
        page = r.get_json()
        out.extend(page["statusChanges"])
        if not page["statusChanges"] and not page["hasMore"]:
            return out
        assert page["nextAfter"] > after
        after = page["nextAfter"]


def test_status_changes_shape_order_and_stable_ids(ds: Durascope) -> None:
    arns = _run_mix(ds)
    client = create_app(durascope=ds).test_client()
    changes = _all(client)
    positions = [c["position"] for c in changes]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    by_arn: dict[str, list[dict]] = {}
    for c in changes:
        by_arn.setdefault(c["event"]["detail"]["durableExecutionArn"], []).append(c["event"])
    expected = {"ok": "SUCCEEDED", "fail": "FAILED", "stop": "STOPPED", "timeout": "TIMED_OUT"}
    assert set(by_arn) == set(arns.values())
    for key, arn in arns.items():
        events = by_arn[arn]
        assert [e["detail"]["status"] for e in events] == ["RUNNING", expected[key]]
        for e in events:
            assert e["version"] == "0" and e["detail-type"] == "Durable Execution Status Change"
            assert e["source"] == "aws.lambda" and e["resources"] == []
            assert e["account"] == ds.settings.account_id and e["region"] == ds.settings.region
            assert ISO_S.match(e["time"]) and str(uuid.UUID(e["id"])) == e["id"]
            d = e["detail"]
            assert d["durableExecutionName"] == arn.split("/")[-2]
            fn = arn.split(":function:")[1].split(":")[0]
            assert d["functionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{fn}:$LATEST"
            assert ISO_MS.match(d["startTimestamp"])
        assert "endTimestamp" not in events[0]["detail"]
        assert ISO_MS.match(events[1]["detail"]["endTimestamp"])
        assert events[1]["detail"]["startTimestamp"] == events[0]["detail"]["startTimestamp"]
        assert events[1]["detail"]["endTimestamp"] >= events[0]["detail"]["startTimestamp"]
    # Replays (a new process on the same database) produce the same ids.
    ids = [c["event"]["id"] for c in changes]
    assert len(set(ids)) == len(ids)
    with Durascope.open(ds.settings.database_url, run_engine=False) as again:
        assert [c["event"] for c in _all(create_app(durascope=again).test_client())] == [c["event"] for c in changes]


def test_status_change_filters_and_errors(ds: Durascope) -> None:
    arns = _run_mix(ds)
    client = create_app(durascope=ds).test_client()
    failed = _all(client, "&status=FAILED&status=timed_out")
    assert {c["event"]["detail"]["status"] for c in failed} == {"FAILED", "TIMED_OUT"}
    vip = _all(client, "&name_prefix=vip-")
    assert {c["event"]["detail"]["durableExecutionArn"] for c in vip} == {arns["ok"], arns["stop"]}
    fn = _all(client, "&function=add")
    assert {c["event"]["detail"]["durableExecutionArn"] for c in fn} == {arns["ok"]}
    by_arn = _all(client, "&function=arn:aws:lambda:us-east-1:123456789012:function:fail")
    assert {c["event"]["detail"]["durableExecutionArn"] for c in by_arn} == {arns["fail"]}
    for bad in ("status=DONE", "after=-1", "after=x", "limit=0", "limit=5000"):
        r = client.get(f"/api/v1/status-changes?{bad}")
        assert r.status_code == 400, bad
        # The one /api/v1 error shape.
        assert r.get_json()["error"]["type"] == "InvalidParameterValueException"
        assert r.get_json()["error"]["status"] == 400 and r.get_json()["error"]["message"]


def _sse_events(data: bytes) -> list[tuple[int, dict]]:
    out = []
    for block in data.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            out.append((int(fields["id"]), json.loads(fields["data"])))
    return out


def test_sse_feed_resume_and_filters(ds: Durascope) -> None:
    arns = _run_mix(ds)
    client = create_app(durascope=ds).test_client()
    r = client.get("/api/v1/feed?after=0&limit=8")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = _sse_events(r.data)
    assert len(events) == 8
    assert [p for p, _ in events] == sorted(p for p, _ in events)
    assert {e["detail"]["durableExecutionArn"] for _, e in events} == set(arns.values())
    # Resume after the third event: the rest, nothing repeated.
    third = events[2][0]
    rest = _sse_events(client.get("/api/v1/feed?wait=0", headers={"Last-Event-ID": str(third)}).data)
    assert rest == events[3:]
    # Without Last-Event-ID or after: only new changes (none), ends after wait.
    assert _sse_events(client.get("/api/v1/feed?wait=0").data) == []
    only = _sse_events(client.get("/api/v1/feed?after=0&wait=0&status=STOPPED").data)
    assert [e["detail"]["durableExecutionArn"] for _, e in only] == [arns["stop"]]
    bad = client.get("/api/v1/feed", headers={"Last-Event-ID": "nope"})
    assert bad.status_code == 400


def test_feed_page_escapes_and_streams(ds: Durascope) -> None:
    register(ds, "add-one", "th_basic.add_one")
    ds.wait(ds.start("add-one", "{}", name="page-run"))
    client = create_app(durascope=ds).test_client()
    r = client.get("/feed?function=%3Cscript%3Ealert(1)%3C/script%3E")
    html = r.data.decode()
    assert r.status_code == 200 and "EventSource" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    page = client.get("/feed").data.decode()
    assert "page-run" in page and "SUCCEEDED" in page


def test_imported_histories_announce_no_status_change(ds: Durascope) -> None:
    """A history copied in (import, pull) happened elsewhere: no RUNNING/FAILED for it on the
    feed or to webhooks, and the cursor still moves past its events."""
    from recorder.transfer import history_document, import_histories, parse_history

    register(ds, "add-one", "th_basic.add_one")
    ran = ds.start("add-one", '{"a": 1}', name="ran-here")
    ds.wait(ran)
    doc = json.loads(json.dumps(history_document(ds.db, ran)))
    old_id, copied_id = ran.rsplit("/", 1)[1], str(uuid.uuid4())
    doc["DurableExecutionArn"] = ran.replace(f"ran-here/{old_id}", f"copied/{copied_id}")
    for e in doc["Events"]:
        if e.get("Id") == old_id:
            e["Id"], e["Name"] = copied_id, "copied"
    import_histories(ds.db, [parse_history(doc, "copy")])
    assert ds.describe(doc["DurableExecutionArn"]).status == "SUCCEEDED"
    client = create_app(durascope=ds).test_client()
    arns = {c["event"]["detail"]["durableExecutionArn"] for c in _all(client)}
    assert ran in arns and doc["DurableExecutionArn"] not in arns
