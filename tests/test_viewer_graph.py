"""The execution graph (server-side SVG): one red box for the failed operation, branches and
iterations side by side, readable at 1,000 operations; and one operation on its own (the
graph panel's content, its own page, its JSON twin) — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from recorder.api import Durascope
from recorder.demo import register_samples
from tests.conftest import register
from viewer import create_app
from viewer.graph import MAX_BOXES, MAX_COLUMNS, build_graph
from viewer.view_models.execution import ExecutionView, OperationView
from viewer.view_models.history_walk import Attempt


def url(arn: str, page: str = "") -> str:
    return f"/executions/{quote(arn, safe='/:')}" + (f"/{page}" if page else "")


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def test_the_failed_step_is_the_red_box_and_opens_in_the_panel(ds: Durascope, client) -> None:
    register(ds, "doomed", "th_basic:always_fails")
    arn = ds.start("doomed", "{}", name="doomed")
    assert ds.wait(arn, 30).status == "FAILED"
    g = client.get("/api/v1" + url(arn, "graph")).get_json()
    start, step, end = g["boxes"]
    assert (start["title"], end["title"], end["state"]) == ("Start", "FAILED", "failed")
    assert step["title"] == "doomed" and step["state"] == "failed" and step["failing"] and step["op_id"]
    assert step["subtitle"].startswith("step · 2 attempts")
    assert [e["failing"] for e in g["edges"]] == [True, True]  # the path into the red box, and out to FAILED
    page = client.get(url(arn)).get_data(as_text=True)
    assert 'class="g-box g-leaf st-failed failing" href="#op-' + step["op_id"] in page
    # The panel beside the graph opens on the failing step: its error and traceback, no click needed.
    panel = page[page.index('id="node-panel"') : page.index("</aside>")]
    assert f'data-op="{step["op_id"]}"' in panel and "never works" in panel and "Traceback" in panel

    fragment = client.get(url(arn, f"operations/{step['op_id']}") + "?partial=1").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div class="operation-panel"') and "<html" not in fragment
    assert "attempt 2 · <b>failed</b>" in fragment and "raise RuntimeError(&#34;never works&#34;)" in fragment
    full = client.get(url(arn, f"operations/{step['op_id']}")).get_data(as_text=True)
    assert "<html" in full and 'href="/webhooks"' in full and "never works" in full
    twin = client.get("/api/v1" + url(arn, f"operations/{step['op_id']}")).get_json()
    assert twin["op"]["id"] == step["op_id"] and len(twin["op"]["attempts"]) == 2
    assert len(twin["lines"]) == 2 and twin["path"] == [[step["op_id"], "doomed"]]
    assert client.get(url(arn, "operations/nope")).status_code == 404
    assert client.get("/api/v1" + url(arn, "operations/nope")).get_json()["error"]["status"] == 404


def test_branches_and_iterations_sit_side_by_side(ds: Durascope, client) -> None:
    register_samples(ds)
    loan = ds.start(
        "loan-origination",
        json.dumps(
            {
                "application_id": "a-1",
                "applicant": "ada",
                "amount": 1000,
                "term_months": 12,
                "annual_income": 90000,
                "credit_score": 800,
                "fraud_flag": True,
            }
        ),
        name="loan",
    )
    items = [f"i{n}" for n in range(30)]
    mapped = ds.start(
        "map-with-failures", json.dumps({"items": items, "fail_indices": [3, 17], "tolerated_failures": 5}), name="map"
    )
    assert ds.wait(loan, 60).status == "SUCCEEDED" and ds.wait(mapped, 60).status == "SUCCEEDED"

    g = client.get("/api/v1" + url(loan, "graph")).get_json()
    [checks] = [b for b in g["boxes"] if b["kind"] == "group"]
    assert checks["title"] == "background-checks" and checks["subtitle"] == "3 branches: 3 succeeded"
    inside = [
        b
        for b in g["boxes"]
        if b["kind"] == "leaf"
        and checks["x"] < b["x"] < checks["x"] + checks["w"]
        and checks["y"] < b["y"] < checks["y"] + checks["h"]
    ]
    assert len(inside) == 3 and len({b["y"] for b in inside}) == 1  # one row: side by side

    g = client.get("/api/v1" + url(mapped, "graph")).get_json()
    [group] = [b for b in g["boxes"] if b["kind"] == "group"]
    assert group["subtitle"] == "30 iterations: 28 succeeded · 2 failed" and group["failing"]
    leaves = [
        b
        for b in g["boxes"]
        if b["kind"] in ("leaf", "summed") and b["y"] > group["y"] and b["y"] < group["y"] + group["h"]
    ]
    assert len(leaves) == MAX_COLUMNS
    assert {b["title"] for b in leaves if b["state"] == "failed"} == {"process-i3", "process-i17"}
    [summed] = [b for b in leaves if b["kind"] == "summed"]
    assert summed["title"] == "+ 27 iterations" and summed["subtitle"] == "27 succeeded"


def _view(ops: list[OperationView]) -> ExecutionView:
    return ExecutionView(
        arn="arn",
        name="n",
        function="f",
        version="$LATEST",
        status="FAILED",
        input=None,
        result=None,
        error=None,
        start_ms=0,
        end_ms=10_000,
        duration_ms=10_000,
        active_ms=10_000,
        suspended_ms=0,
        event_count=0,
        invocations=(),
        gaps=(),
        operations=tuple(ops),
        first_failure_op=None,
        first_failure_event=None,
        waiting_on=(),
        callbacks=(),
        parent_arn=None,
        now_ms=10_000,
    )


def _step(i: int, parent: str | None, status: str = "SUCCEEDED") -> OperationView:
    outcome = "succeeded" if status == "SUCCEEDED" else "failed"
    return OperationView(
        id=f"s{parent}{i}",
        parent_id=parent,
        depth=1 if parent else 0,
        name=f"step-{i}",
        type="STEP",
        sub_type="Step",
        status=status,
        start_ms=i,
        end_ms=i + 1,
        attempts=(Attempt(1, i, i + 1, outcome, None, None, i),),
    )


def test_the_graph_stays_readable_at_a_thousand_operations() -> None:
    ops = [_step(i, None) for i in range(1000)]
    ops[600] = _step(600, None, "FAILED")
    ops.append(
        OperationView(
            id="m",
            parent_id=None,
            depth=0,
            name="fan-out",
            type="CONTEXT",
            sub_type="Map",
            status="SUCCEEDED",
            start_ms=2000,
            end_ms=3000,
        )
    )
    for i in range(1000):
        ops.append(
            OperationView(
                id=f"it{i}",
                parent_id="m",
                depth=1,
                name=f"item-{i}",
                type="CONTEXT",
                sub_type="MapIteration",
                status="FAILED" if i == 700 else "SUCCEEDED",
                start_ms=2000 + i,
                end_ms=2001 + i,
            )
        )
        ops.append(_step(i, f"it{i}", "FAILED" if i == 700 else "SUCCEEDED"))
    g = build_graph(_view(ops))
    assert len(g.boxes) <= 30 and g.width <= 900 and g.height <= 2000
    titles = [b.title for b in g.boxes]
    assert "step-600" in titles and "step-0" in titles and "step-999" in titles
    assert any(re.fullmatch(r"\+ [\d,]+ more operations", t) for t in titles)
    [fan_out] = [b for b in g.boxes if b.kind == "group"]
    assert fan_out.subtitle == "1,000 iterations: 999 succeeded · 1 failed"
    failed = [b for b in g.boxes if b.state == "failed" and b.kind == "leaf"]
    assert {b.title for b in failed} == {"step-600", "step-700"}
    assert "+ 997 iterations" in titles
    assert g.note and "drawn as summed-up boxes" in g.note
    assert MAX_BOXES >= len(g.boxes)
