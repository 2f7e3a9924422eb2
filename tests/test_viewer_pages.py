"""The feed and webhook pages in the app's layout, their JSON twins, the one /api/v1 error
shape, the HTML 404 for browsers, the favicon and CSRF tokens in every form — on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from recorder.api import Durascope
from recorder.followers.dispatcher import Dispatcher
from tests.conftest import register, submit_form
from tests.test_webhooks import FAST
from tests.webhook_receiver import Receiver
from viewer import create_app

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def _layout(page: str) -> None:
    """The app's layout: its stylesheet, the navigation back to every page, the favicon."""
    assert 'href="/static/viewer.css"' in page and 'rel="icon"' in page
    for link in ('href="/"', 'href="/feed"', 'href="/webhooks"'):
        assert link in page


def test_feed_page_links_executions_and_has_a_twin(ds: Durascope, client) -> None:
    register(ds, "add-one", "th_basic.add_one")
    arn = ds.start("add-one", "{}", name="fed")
    ds.wait(arn, 30)
    page = client.get("/feed").get_data(as_text=True)
    _layout(page)
    href = f"/executions/{quote(arn, safe='/:')}"
    assert f'<a href="{href}" title="{arn}">fed</a>' in page  # a link named by the execution, not a raw ARN
    assert page.count('<td class="ts"><time') == 2  # RUNNING and SUCCEEDED, as non-wrapping <time>s
    twin = client.get("/api/v1/feed/recent").get_json()
    assert [(r["status"], r["name"], r["arn"]) for r in twin["rows"]] == [
        ("SUCCEEDED", "fed", arn),
        ("RUNNING", "fed", arn),
    ]
    assert client.get("/api/v1/feed/recent?status=FAILED").get_json()["rows"] == []
    bad = client.get("/feed?status=NOPE")
    assert bad.status_code == 400 and "unknown status" in bad.get_data(as_text=True)


def test_webhook_pages_show_which_execution_each_delivery_was_for(ds: Durascope, client) -> None:
    receiver = Receiver()
    try:
        resp = submit_form(
            client,
            "/webhooks",
            "/webhooks",
            {"url": receiver.url("/in"), "status": "SUCCEEDED", "description": "<b>ops</b>"},
        )
        page = resp.get_data(as_text=True)
        assert resp.status_code == 201 and "shown only this once" in page
        secret = re.search(r'class="secret copyable"[^>]*>(whsec_[^<]+)<', page).group(1)
        sub = client.get("/api/v1/webhooks").get_json()["webhooks"][0]
        receiver.secrets["/in"] = secret
        register(ds, "add-one", "th_basic.add_one")
        dispatcher = Dispatcher(ds.db, ds.settings, FAST)
        dispatcher.start()
        try:
            arn = ds.start("add-one", "{}", name="hooked")
            ds.wait(arn, 30)
            ds.wait_for(lambda: receiver.at("/in"), 30, "not delivered")
            ds.wait_for(
                lambda: (
                    client.get(f"/api/v1/webhooks/{sub['id']}").get_json()["deliveryLog"][0]["state"] == "succeeded"
                ),
                30,
                "delivery not recorded",
            )
        finally:
            dispatcher.stop()
    finally:
        receiver.down()
    twin = client.get(f"/api/v1/webhooks/{sub['id']}").get_json()
    assert twin["url"] == receiver.url("/in") and twin["enabled"] is True
    assert twin["deliveries"]["succeeded"] == 1  # the counts, as the admin API always gave them
    [delivery] = twin["deliveryLog"]
    assert delivery["execution"] == {
        "executionId": arn.rsplit("/", 1)[1],
        "arn": arn,
        "name": "hooked",
        "function": "add-one",
    }
    page = client.get(f"/webhooks/{sub['id']}").get_data(as_text=True)
    _layout(page)
    assert f'<a href="/executions/{quote(arn, safe="/:")}" title="{arn}">hooked</a>' in page
    listing = client.get("/webhooks").get_data(as_text=True)
    assert "&lt;b&gt;ops&lt;/b&gt;" in listing and "<b>ops</b>" not in listing


def test_refused_forms_come_back_in_place(ds: Durascope, client) -> None:
    resp = submit_form(client, "/webhooks", "/webhooks", {"url": "ftp://example.com/x", "description": "kept"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'class="form-error"' in page and "http:// or https://" in page
    assert 'value="ftp://example.com/x"' in page and 'value="kept"' in page  # what was typed stays
    assert client.get("/api/v1/webhooks").get_json()["webhooks"] == []
    resp = submit_form(client, "/webhooks", "/webhooks/nope/enable")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    resp = submit_form(client, "/webhooks", "/webhooks/nope/explode")
    assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_every_form_carries_a_csrf_token(ds: Durascope, client) -> None:
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", json.dumps({"timeout": 300}), name="asks")
    ds.wait_for(lambda: client.get(f"/api/v1/executions/{quote(arn, safe='/:')}").get_json()["callbacks"], 30)
    submit_form(client, "/webhooks", "/webhooks", {"url": "http://127.0.0.1:9/x"})
    sub = client.get("/api/v1/webhooks").get_json()["webhooks"][0]
    for path in ("/", f"/executions/{quote(arn, safe='/:')}", "/feed", "/webhooks", f"/webhooks/{sub['id']}"):
        page = client.get(path).get_data(as_text=True)
        posts = re.findall(r'<form[^>]*method="post"[^>]*>(.*?)</form>', page, re.S)
        assert all('name="csrf_token"' in form for form in posts), path
    assert len(re.findall(r'method="post"', client.get("/webhooks").get_data(as_text=True))) == 3


def test_one_error_shape_under_api_v1_and_html_404s_for_browsers(ds: Durascope, client) -> None:
    for path in (
        "/api/v1/nothing",
        "/api/v1/executions?status=NOPE",
        "/api/v1/status-changes?after=x",
        "/api/v1/webhooks/none",
        "/api/v1/feed/recent?limit=0",
    ):
        resp = client.get(path)
        err = resp.get_json()["error"]
        assert set(err) == {"status", "type", "message"} and err["status"] == resp.status_code, path
        assert "x-amzn-ErrorType" not in resp.headers, path
    assert client.get("/api/v1/webhooks/none").get_json()["error"]["type"] == "ResourceNotFoundException"
    # A browser gets a page for an unknown URL; an API client keeps the AWS error.
    resp = client.get("/no/such/page", headers=BROWSER)
    assert resp.status_code == 404 and resp.mimetype == "text/html" and "Not found" in resp.get_data(as_text=True)
    _layout(resp.get_data(as_text=True))
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        resp = client.get("/no/such/page", headers=headers)
        assert resp.status_code == 404 and resp.headers["x-amzn-ErrorType"], headers
    resp = client.get("/2015-03-31/functions/nope/bogus", headers=BROWSER)
    assert resp.headers["x-amzn-ErrorType"] and "Type" in resp.get_json()


def test_favicon(client) -> None:
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/svg+xml" and b"<svg" in resp.data
    assert client.get("/static/favicon.svg").status_code == 200


def test_the_list_says_how_each_execution_ended(ds: Durascope, client) -> None:
    from recorder.demo import register_samples

    register_samples(ds)
    register(ds, "waits", "th_basic:waits")
    failed = ds.start("orders", json.dumps({"order_id": "o-1", "items": []}), name="no-items")
    timed_out = ds.start("execution-timeout", json.dumps({"seconds": 60}), name="too-slow")
    stopped = ds.start("waits", json.dumps({"seconds": 3600}), name="stopped")
    ds.wait_for(lambda: any(e["EventType"] == "WaitStarted" for e in ds.history(stopped)), 30)
    ds.stop(stopped)
    for arn in (failed, timed_out, stopped):
        ds.wait(arn, 30)
    rows = {r["name"]: r for r in client.get("/api/v1/executions").get_json()["rows"]}
    assert rows["no-items"]["error"] == "StepError: order o-1 has no items"
    assert rows["no-items"]["error_type"] == "aws_durable_execution_sdk_python.exceptions.StepError"
    assert "timed out" in rows["too-slow"]["error"]
    assert rows["stopped"]["error"] == "Execution stopped by user request"
    page = client.get("/").get_data(as_text=True)
    assert ">StepError: order o-1 has no items</div>" in page


def test_imported_copies_are_read_only_and_say_where_they_came_from(ds: Durascope, client) -> None:
    from recorder.synthetic import T0, synthetic
    from recorder.transfer import import_histories, parse_history

    doc = synthetic("copied", 20, T0)
    import_histories(ds.db, [parse_history(doc, "run.zip/history-1.json")])
    arn = doc["DurableExecutionArn"]
    page = client.get(f"/executions/{quote(arn, safe='/:')}").get_data(as_text=True)
    assert "read-only copy" in page and "imported from run.zip/history-1.json" in page
    assert "Stop execution" not in page
    assert client.get("/api/v1/executions").get_json()["rows"][0]["imported"] is True
    assert ">copy</span>" in client.get("/").get_data(as_text=True)


def test_counts_read_as_words(ds: Durascope, client) -> None:
    """1 event, 1 line, 1 child: no '1 lines' anywhere."""
    register(ds, "add-one", "th_basic.add_one")
    register(ds, "doomed", "th_basic:always_fails")
    arn = ds.start("add-one", "{}", name="one")
    doomed = ds.start("doomed", "{}", name="doomed")
    ds.wait(arn, 30)
    ds.wait(doomed, 30)
    events = client.get(f"/executions/{quote(arn, safe='/:')}/events?type=ExecutionStarted").get_data(as_text=True)
    assert "1 matching event;" in events
    logs = client.get(f"/executions/{quote(doomed, safe='/:')}/logs?invocation=1").get_data(as_text=True)
    assert "1 line matches." in logs
    page = client.get(f"/executions/{quote(doomed, safe='/:')}").get_data(as_text=True)
    assert not re.search(r"\b1 (lines|children|executions|attempts|events|bytes)\b", page)


def test_refusals_under_api_v1_have_the_same_shape(tmp_path) -> None:
    """Access refusals (here: a Host that is not served) use the one /api/v1 error shape too."""
    from recorder.config import Settings

    with Durascope.open(f"sqlite:///{tmp_path}/d.db", run_engine=False) as ds:
        client = create_app(Settings.from_env(database_url=ds.settings.database_url), durascope=ds).test_client()
        resp = client.get("/api/v1/executions", headers={"Host": "evil.example"})
        assert resp.status_code == 421
        assert set(resp.get_json()["error"]) == {"status", "type", "message"}
