"""Per-function statistics (recorder.stats), its pages and JSON twins, on SQLite and PostgreSQL.

The numbers are checked against an oracle computed in the test from the rows and the
history (the same definitions, written plainly), and the percentiles against known
durations loaded through the import path.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.stats import Window, function_stats
from recorder.synthetic import T0
from recorder.transfer import import_histories, parse_history
from tests.conftest import register
from viewer import create_app

STEP_KEYS = {"name", "count", "p50Ms", "p95Ms", "p99Ms", "retryRate", "failureRate"}


def _percentile(values: list[float], p: float) -> float:
    """percentile_cont: linear interpolation between the two neighbouring ranks."""
    s = sorted(values)
    k = p * (len(s) - 1)
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (k - lo) * (s[hi] - s[lo])


def _run_pipeline(ds: Durascope) -> dict[str, str]:
    register(ds, "pipeline", "th_stats:pipeline")
    arns = {kind: ds.start("pipeline", json.dumps(event), name=kind) for kind, event in (
        ("plain", {}), ("retry", {"retry": True}), ("fail", {"fail": True}), ("answered", {"callback": True}),
        ("waiting", {"callback": True}))}
    for kind in ("plain", "retry", "fail"):
        ds.wait(arns[kind], 60)

    def callback_of(arn: str) -> str | None:
        started = [e for e in ds.history(arn) if e["EventType"] == "CallbackStarted"]
        return started[0]["CallbackStartedDetails"]["CallbackId"] if started else None

    cb = ds.wait_for(lambda: callback_of(arns["answered"]), 30, "no callback started")
    ds.wait_for(lambda: callback_of(arns["waiting"]), 30, "no callback started")
    ds.callback_success(cb, '"yes"')
    assert ds.wait(arns["answered"], 30).status == "SUCCEEDED"
    return arns


def _step_rows(ds: Durascope) -> list[Any]:
    with ds.db.read() as s:
        from sqlalchemy import select

        from recorder.store.models import Operation

        return list(s.execute(select(Operation.name, Operation.start_ms, Operation.end_ms, Operation.attempt,
                                     Operation.status).where(Operation.type == "STEP")))


def test_statistics_of_real_runs(ds: Durascope) -> None:
    arns = _run_pipeline(ds)
    st = function_stats(ds.db, "pipeline", Window.last())

    assert st.executions == {"FAILED": 1, "RUNNING": 1, "SUCCEEDED": 3}
    by_name = {s.name: s for s in st.steps}
    assert (by_name["fetch"].count, by_name["fetch"].retry_rate, by_name["fetch"].failure_rate) == (5, 0.0, 0.0)
    # parse: "retry" and "fail" each took one attempt beyond the first; "fail" failed.
    assert (by_name["parse"].count, by_name["parse"].retry_rate, by_name["parse"].failure_rate) == (5, 0.4, 0.2)

    # Percentiles against the oracle over the same rows.
    rows = _step_rows(ds)
    parse_ms = [r.end_ms - r.start_ms for r in rows if r.name == "parse" and r.end_ms is not None]
    for p, got in ((0.5, by_name["parse"].p50_ms), (0.95, by_name["parse"].p95_ms), (0.99, by_name["parse"].p99_ms)):
        assert got == pytest.approx(_percentile(parse_ms, p), abs=0.1)
    assert by_name["parse"].p95_ms is not None and by_name["parse"].p95_ms >= 1000  # the retry waited 1 s

    # Active time: the InvocationCompleted durations; invocations: every one of them.
    invocations = [e["InvocationCompletedDetails"] for arn in arns.values() for e in ds.history(arn)
                   if e["EventType"] == "InvocationCompleted"]
    active = sum(round((d["EndTimestamp"] - d["StartTimestamp"]) * 1000) for d in invocations)
    assert abs(st.active_ms - active) <= len(invocations)  # the history renders seconds; rounding only
    assert st.invocations == len(invocations)
    assert sum(n for _, n in st.invocations_per_execution) == 5
    assert st.suspended_ms > 0

    # One callback was answered, one still waits: only the answered one has a wait time.
    assert st.callback_waits.count == 1 and st.callback_waits.p50_ms is not None
    assert sum(n for _, n in st.callback_waits.histogram) == 1

    # The window selects by start time.
    empty = function_stats(ds.db, "pipeline", Window(0, 1))
    assert (empty.executions, empty.steps, empty.invocations) == ({}, (), 0)


def _timed_history(function: str, i: int, step_ms: list[int]) -> dict[str, Any]:
    """A finished execution whose steps "work" took ``step_ms`` each (known durations)."""
    eid = f"e{i:08d}"
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST/durable-execution/{eid}/{eid}"
    t = T0 + i
    events: list[dict[str, Any]] = [{"EventType": "ExecutionStarted", "EventId": 1, "Id": eid, "EventTimestamp": t,
                                     "ExecutionStartedDetails": {"Input": {"Payload": "{}", "Truncated": False},
                                                                                 "ExecutionTimeout": 3600}}]
    for n, ms in enumerate(step_ms):
        op = f"{n:064x}"
        events.append({"EventType": "StepStarted", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": "work", "EventTimestamp": t, "StepStartedDetails": {}})
        t += ms / 1000
        events.append({"EventType": "StepSucceeded", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": "work", "EventTimestamp": t, "StepSucceededDetails": {
                           "Result": {"Payload": "1", "Truncated": False}, "RetryDetails": {"CurrentAttempt": 1}}})
    events.append({"EventType": "InvocationCompleted", "EventId": len(events) + 1, "EventTimestamp": t,
                   "InvocationCompletedDetails": {"StartTimestamp": T0 + i, "EndTimestamp": t, "RequestId": "r"}})
    events.append({"EventType": "ExecutionSucceeded", "EventId": len(events) + 1, "Id": eid, "EventTimestamp": t,
                   "ExecutionSucceededDetails": {"Result": {"Payload": "1", "Truncated": False}}})
    return {"DurableExecutionArn": arn, "Events": events}


def test_percentiles_are_the_same_on_both_databases(control_only: Durascope) -> None:
    ds = control_only
    durations = [10, 20, 30, 40, 100, 250, 700]
    import_histories(ds.db, [parse_history(_timed_history("timed", i, [ms]), "t") for i, ms in enumerate(durations)])
    st = function_stats(ds.db, "timed", Window(int(T0 * 1000) - 1, int(T0 * 1000) + 60_000))
    [work] = st.steps
    assert work.count == 7
    assert (work.p50_ms, work.p95_ms, work.p99_ms) == (40.0, pytest.approx(565.0), pytest.approx(673.0))
    assert st.active_ms == sum(durations)
    assert st.executions == {"SUCCEEDED": 7}


# --- the pages ----------------------------------------------------------------------------------


def test_functions_pages_and_twins(ds: Durascope) -> None:
    _run_pipeline(ds)
    register(ds, "idle", "th_basic:add_one")
    client = create_app(durascope=ds).test_client()
    html = {"Accept": "text/html"}

    index = client.get("/functions", headers=html).get_data(as_text=True)
    assert 'data-function="pipeline"' in index and 'data-function="idle"' in index
    assert '<a href="/functions"' in index  # in the navigation
    listed = {f["name"]: f for f in client.get("/api/v1/functions").get_json()["functions"]}
    assert listed["pipeline"]["executions"] == {"FAILED": 1, "RUNNING": 1, "SUCCEEDED": 3}
    assert listed["pipeline"]["failureRate"] == 0.25 and listed["idle"]["total"] == 0

    page = client.get("/functions/pipeline", headers=html).get_data(as_text=True)
    for key in ("executions", "steps", "time", "invocations", "callbacks"):
        assert f'data-chart="chart-{key}"' in page
    assert 'data-step="parse"' in page and "/assets/plotly.min.js" in page
    assert "cdn" not in page.lower()

    body = client.get("/api/v1/functions/pipeline/stats?since=1h").get_json()
    assert body["executions"] == {"FAILED": 1, "RUNNING": 1, "SUCCEEDED": 3}
    assert all(set(s) == STEP_KEYS for s in body["steps"])
    parse = next(s for s in body["steps"] if s["name"] == "parse")
    assert (parse["count"], parse["retryRate"], parse["failureRate"]) == (5, 0.4, 0.2)
    assert body["callbackWaits"]["count"] == 1 and body["invocations"]["total"] >= 5

    since_future = client.get("/api/v1/functions/pipeline/stats?since=2100-01-01&until=2100-01-02").get_json()
    assert since_future["executions"] == {} and since_future["steps"] == []

    bad = client.get("/api/v1/functions/pipeline/stats?since=yesterday")
    assert bad.status_code == 400 and "since" in bad.get_json()["error"]["message"]
    backwards = client.get("/api/v1/functions/pipeline/stats?since=2026-01-02&until=2026-01-01")
    assert backwards.status_code == 400
    assert client.get("/api/v1/functions/nope/stats").status_code == 404
    assert client.get("/functions/nope", headers=html).status_code == 404

    js = client.get("/assets/plotly.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript" and b"plotly" in js.data[:2000].lower()


def test_step_names_are_escaped(ds: Durascope) -> None:
    name = "<img src=x onerror=alert(1)>"
    doc = _timed_history("escapes", 1, [5])
    for e in doc["Events"]:
        if e.get("Name") == "work":
            e["Name"] = name
    import_histories(ds.db, [parse_history(doc, "t")])
    client = create_app(durascope=ds).test_client()
    page = client.get(f"/functions/escapes?since={int(T0 * 1000) - 1}&until={int(T0 * 1000) + 60_000}",
                      headers={"Accept": "text/html"}).get_data(as_text=True)
    assert name not in page and "&lt;img src=x" in page
