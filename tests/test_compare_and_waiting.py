"""Compare two executions (/diff, /api/v1/diff) and the waiting board (/waiting,
/api/v1/waiting, its bulk actions), on SQLite and PostgreSQL, with real handlers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import text

from recorder.api import Durascope
from tests.conftest import register, submit_form
from viewer import create_app


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def _run(ds: Durascope, event: dict, name: str) -> str:
    arn = ds.start("checkout", json.dumps(event), name=name)
    ds.wait(arn, 60)
    return arn


def _diff(client, a: str, b: str) -> dict:
    resp = client.get("/api/v1/diff", query_string={"a": a, "b": b})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_compare_marks_the_first_divergence(ds: Durascope, client) -> None:
    register(ds, "checkout", "th_insight.checkout")
    good = _run(ds, {"amount": 5}, "good")
    good2 = _run(ds, {"amount": 7}, "good-2")
    bad = _run(ds, {"amount": 5, "fail": True}, "bad")
    express = _run(ds, {"amount": 5, "express": True}, "express")

    same = _diff(client, good, good2)
    assert same["firstDivergence"] is None
    assert [r["name"] for r in same["rows"]] == ["price", "ship", "charge"]
    price = same["rows"][0]
    assert price["a"]["result"] == "10" and price["b"]["result"] == "14"  # decoded results
    assert "result" in price["differences"] and price["reason"] is None

    failed = _diff(client, good, bad)
    assert failed["firstDivergence"] == {"operationId": failed["rows"][2]["operationId"], "name": "charge",
                                         "a": "SUCCEEDED", "b": "FAILED", "reason": "outcome"}
    charge = failed["rows"][2]
    assert "card declined for 10" in charge["b"]["error"] and charge["a"]["error"] is None
    assert {"result", "error"} <= set(charge["differences"])
    assert failed["a"]["status"] == "SUCCEEDED" and failed["b"]["status"] == "FAILED"

    # The same place in the code (the same operation id) ran a different step.
    branched = _diff(client, good, express)
    d = branched["firstDivergence"]
    assert (d["reason"], d["a"], d["b"]) == ("name", "ship", "ship-express")
    assert d["operationId"] == branched["rows"][1]["operationId"]

    page = client.get("/diff", query_string={"a": good, "b": bad}).get_data(as_text=True)
    assert 'href="/diff" class="on"' in page and 'id="divergence"' in page
    assert "First divergence at" in page and 'class="diverged first' in page
    assert f'/executions/{quote(bad, safe="/:")}/operations/{charge["operationId"]}' in page


def test_compare_with_the_last_success_and_from_the_list(ds: Durascope, client) -> None:
    register(ds, "checkout", "th_insight.checkout")
    _run(ds, {"amount": 1}, "older-success")
    newest = _run(ds, {"amount": 2}, "newest-success")
    bad = _run(ds, {"amount": 2, "fail": True}, "bad")

    page = client.get(f"/executions/{quote(bad, safe='/:')}").get_data(as_text=True)
    assert "Compare with the last success" in page
    assert "Compare with the last success" not in client.get(f"/executions/{quote(newest, safe='/:')}").get_data(
        as_text=True)
    resp = client.get("/diff/last-success", query_string={"arn": bad})
    assert resp.status_code == 303
    target = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert target == {"a": [newest], "b": [bad]}

    register(ds, "doomed", "th_basic.always_fails")
    lonely = ds.start("doomed", "{}")
    ds.wait(lonely, 60)
    none_yet = client.get("/diff/last-success", query_string={"arn": lonely})
    assert none_yet.status_code == 404 and "has no successful execution" in none_yet.get_data(as_text=True)

    # The list's checkboxes submit two "arn" values to /diff.
    listing = client.get("/").get_data(as_text=True)
    assert '<form id="compare" method="get" action="/diff">' in listing
    assert f'name="arn" value="{bad}" form="compare"' in listing
    picked = client.get("/diff", query_string=[("arn", newest), ("arn", bad)])
    assert picked.status_code == 200 and "First divergence at" in picked.get_data(as_text=True)
    one = client.get("/diff", query_string=[("arn", bad)])
    assert one.status_code == 400 and "exactly two" in one.get_data(as_text=True)


def test_compare_refuses_bad_input_clearly(ds: Durascope, client) -> None:
    register(ds, "checkout", "th_insight.checkout")
    good = _run(ds, {"amount": 1}, "good")
    missing = good.replace(good.rsplit("/", 1)[1], "0" * 32)
    resp = client.get("/api/v1/diff", query_string={"a": good, "b": missing})
    assert resp.status_code == 404 and resp.get_json()["error"]["type"] == "ResourceNotFoundException"
    resp = client.get("/api/v1/diff", query_string={"a": good})
    assert resp.status_code == 400 and "two executions" in resp.get_json()["error"]["message"]
    assert client.get("/diff").status_code == 200  # the form asking for two


def _board(client, **args: str) -> list[dict]:
    resp = client.get("/api/v1/waiting", query_string=args)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["executions"]


def _suspended(ds: Durascope, arn: str, kind: str, client) -> dict:
    def found() -> dict | None:
        for e in _board(client):
            if e["executionArn"] == arn and any(w["kind"] == kind for w in e["waitingOn"]):
                return e
        return None

    return ds.wait_for(found, 60, f"{arn} never showed as waiting on a {kind}")


def test_the_board_lists_what_each_suspended_execution_waits_for(ds: Durascope, client) -> None:
    register(ds, "approval", "th_basic.approval")
    register(ds, "waits", "th_basic.waits")
    register(ds, "stuck", "th_insight.stuck")
    register(ds, "polls", "th_insight.polls")
    poll_arn = ds.start("polls", "{}", name="poller")
    cb_arn = ds.start("approval", json.dumps({"timeout": 30, "heartbeat": 1}), name="needs-approval")
    wait_arn = ds.start("waits", json.dumps({"seconds": 600}), name="sleeper")
    stuck_arn = ds.start("stuck", "{}", name="stuck-1")

    cb = _suspended(ds, cb_arn, "callback", client)
    [item] = cb["waitingOn"]
    assert item["name"].startswith("approval") and item["callbackId"] and item["until"].endswith("Z")
    assert cb["function"] == "approval" and cb["suspendedSince"].endswith("Z")
    wait = _suspended(ds, wait_arn, "wait", client)
    assert wait["waitingOn"][0]["name"] == "pause"
    [check] = _suspended(ds, poll_arn, "condition", client)["waitingOn"]
    assert check["name"] == "ready?" and check["attempt"] == 1 and check["until"].endswith("Z")
    assert {e["executionArn"] for e in _board(client, kind="condition")} == {poll_arn}
    retrying = ds.wait_for(lambda: next((e for e in _board(client) if e["executionArn"] == stuck_arn
                                         and e["waitingOn"] and e["waitingOn"][0].get("attempt", 0) >= 3), None),
                           60, "the step never reached its third retry")
    assert retrying["waitingOn"][0]["kind"] == "retry"
    assert retrying["waitingOn"][0]["highlights"] == ["stuck retrying"]
    # The heartbeat deadline (1 s) passes: the callback is highlighted.
    ds.wait_for(lambda: "heartbeat overdue" in (next(
        (e for e in _board(client) if e["executionArn"] == cb_arn), {"waitingOn": [{}]})["waitingOn"][0]
        .get("highlights") or []) or ds.describe(cb_arn).status != "RUNNING", 30, "no highlight")

    assert {e["executionArn"] for e in _board(client, kind="stuck-retrying")} == {stuck_arn}
    assert {e["executionArn"] for e in _board(client, kind="wait")} == {wait_arn}
    assert {e["executionArn"] for e in _board(client, function="waits")} == {wait_arn}
    # Oldest first.
    board = _board(client)
    assert [e["suspendedSince"] for e in board] == sorted(e["suspendedSince"] for e in board)
    bad = client.get("/api/v1/waiting?kind=nope")
    assert bad.status_code == 400 and "kind must be one of" in bad.get_json()["error"]["message"]

    page = client.get("/waiting").get_data(as_text=True)
    assert 'href="/waiting" class="on"' in page and 'name="csrf_token"' in page
    assert "stuck retrying" in page and 'class="hot"' in page and "sleeper" in page


def test_bulk_actions_go_through_the_control_plane(ds: Durascope, client) -> None:
    register(ds, "approval", "th_basic.approval")
    register(ds, "waits", "th_basic.waits")
    cb_arns = [ds.start("approval", json.dumps({"timeout": 300}), name=f"cb-{i}") for i in range(2)]
    sleepers = [ds.start("waits", json.dumps({"seconds": 600}), name=f"sleep-{i}") for i in range(2)]
    callbacks = [_suspended(ds, a, "callback", client)["waitingOn"][0]["callbackId"] for a in cb_arns]
    for a in sleepers:
        _suspended(ds, a, "wait", client)

    # Without the page's CSRF token nothing happens.
    refused = client.post("/waiting", data={"action": "stop", "arn": sleepers})
    assert refused.status_code == 403
    assert all(ds.describe(a).status == "RUNNING" for a in sleepers)

    nothing = submit_form(client, "/waiting", "/waiting", {"action": "stop"})
    assert nothing.status_code == 400 and "Select the executions" in nothing.get_data(as_text=True)
    no_error = submit_form(client, "/waiting", "/waiting", {"action": "fail-callbacks", "callback_id": ["x"],
                                                            "error_type": ""})
    assert no_error.status_code == 400 and "Give the error" in no_error.get_data(as_text=True)

    resp = submit_form(client, "/waiting", "/waiting", {"action": "heartbeat", "callback_id": callbacks})
    assert resp.status_code == 200 and "Heartbeat sent for 2 callbacks" in resp.get_data(as_text=True)
    with ds.db.read() as conn:
        beats = conn.execute(text("SELECT callback_id, last_heartbeat_ms FROM callbacks")).all()
    assert {cid for cid, beat in beats if beat} == set(callbacks)
    assert all(ds.describe(a).status == "RUNNING" for a in cb_arns)

    resp = submit_form(client, "/waiting", "/waiting", {"action": "fail-callbacks", "callback_id": callbacks,
                                                        "error_type": "Rejected", "error_message": "<b>no</b>"})
    assert resp.status_code == 200 and "Failed 2 callbacks" in resp.get_data(as_text=True)
    for a in cb_arns:
        summary = ds.wait(a, 60)
        assert summary.status == "FAILED"
    failed = [e for e in ds.history(cb_arns[0]) if e["EventType"] == "CallbackFailed"]
    assert failed[0]["CallbackFailedDetails"]["Error"]["Payload"]["ErrorMessage"] == "<b>no</b>"

    # Answering an answered callback is refused for it, and said so.
    again = submit_form(client, "/waiting", "/waiting", {"action": "heartbeat", "callback_id": callbacks[:1],
                                                         "error_type": "x"})
    assert "Heartbeat sent for 0 callbacks" in again.get_data(as_text=True)

    resp = submit_form(client, "/waiting", "/waiting", {"action": "stop", "arn": sleepers})
    assert resp.status_code == 200 and "Stop requested for 2 executions" in resp.get_data(as_text=True)
    for a in sleepers:
        assert ds.wait(a, 60).status == "STOPPED"

