"""The keyless default on loopback cannot be driven from a web page the developer visits.

A page on another site can make the browser send form posts and ``text/plain`` fetches to
127.0.0.1 (no preflight), and with DNS rebinding it can even read the answers. Each attack
below is sent over real HTTP with the headers a browser adds; boto3 and the AWS CLI send
none of them and keep working.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.followers.webhooks import list_subscriptions
from tests.conftest import HANDLERS, running_server

EVIL = "http://evil.example"


@dataclass(frozen=True)
class Local:
    port: int
    ds: Durascope

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def executions(self) -> list[str]:
        return [
            e["DurableExecutionArn"]
            for e in self.lam().list_durable_executions_by_function(FunctionName="add-one")["DurableExecutions"]
        ]

    def lam(self):
        return boto3.client(
            "lambda", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )


def _serve(database_url: str, **settings: object) -> Iterator[Local]:
    with running_server(
        Settings.from_env(database_url=database_url, **settings), run_engine=False, local_workers=False
    ) as (server, ds):
        ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
        yield Local(server.server_port, ds)


@pytest.fixture
def local(database_url: str) -> Iterator[Local]:
    yield from _serve(database_url)


def _subscriptions(local: Local) -> list[object]:
    return list(list_subscriptions(local.ds.db))


def test_a_cross_site_form_cannot_add_a_webhook(local: Local) -> None:
    form = b"url=http%3A%2F%2Fevil.example%2Fcollect&description=x"
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://localhost:{local.port + 1}"},
    ):  # another local site, same-site by name
        status, _, body = local.send(
            "POST", "/webhooks", form, {"Content-Type": "application/x-www-form-urlencoded", **headers}
        )
        assert status == 403, (headers, body[:200])
        assert b"Cross-site" in body
    # Same origin but no CSRF token (a form posted by anything but our own page): refused too.
    status, _, body = local.send(
        "POST", "/webhooks", form, {"Content-Type": "application/x-www-form-urlencoded", "Origin": local.url}
    )
    assert status == 403 and b"CSRF" in body
    assert _subscriptions(local) == []


def test_a_cross_site_text_plain_post_cannot_invoke_or_stop(local: Local) -> None:
    arn = local.ds.start("add-one", '{"a": 1}')
    status, headers, _ = local.send(
        "POST",
        "/2015-03-31/functions/add-one/invocations",
        b'{"a": 2}',
        {"Content-Type": "text/plain", "Origin": EVIL, "X-Amz-Invocation-Type": "Event"},
    )
    assert (status, headers["x-amzn-errortype"]) == (403, "AccessDeniedException")
    path = "/2025-12-01/durable-executions/" + arn.replace("/", "%2F") + "/stop"
    status, _, _ = local.send("POST", path, b"{}", {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert local.executions() == [arn]
    assert local.ds.describe(arn).status == "RUNNING"
    # The same requests without browser headers (boto3, the AWS CLI) work.
    out = local.lam().invoke(FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 2}')
    assert out["StatusCode"] == 202 and len(local.executions()) == 2
    local.lam().stop_durable_execution(DurableExecutionArn=arn)
    assert local.ds.describe(arn).status == "STOPPED"


def test_dns_rebinding_reads_nothing(local: Local) -> None:
    local.ds.start("add-one", '{"a": 1}')
    for path in (
        "/",
        "/api/v1/executions",
        "/durascope/runtime/functions",
        "/2025-12-01/functions/add-one/durable-executions",
    ):
        status, _, body = local.send("GET", path, headers={"Host": f"rebind.evil.example:{local.port}"})
        assert status == 421, (path, status)
        assert b"add-one" not in body and b"th_basic" not in body
    for host in (
        f"127.0.0.1:{local.port}",
        f"localhost:{local.port}",
        "localhost",
        f"[::1]:{local.port}",
        "app.localhost",
    ):
        assert local.send("GET", "/api/v1/executions", headers={"Host": host})[0] == 200, host


def test_allowed_hosts_are_configurable(database_url: str) -> None:
    for local in _serve(database_url, allowed_hosts=("durascope.test", ".corp.example")):
        for host, status in (("durascope.test", 200), ("ci.corp.example:8000", 200), ("corp.example.evil", 421)):
            assert local.send("GET", "/api/v1/executions", headers={"Host": host})[0] == status, host


def test_every_form_the_viewer_serves_carries_a_csrf_token(local: Local) -> None:
    arn = local.ds.start("add-one", '{"a": 1}')
    status, _, body = local.send(
        "POST",
        "/api/v1/webhooks",
        json.dumps({"url": "http://127.0.0.1:9/h"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    sub = json.loads(body)["id"]
    quoted = arn.replace("/", "%2F")
    forms = 0
    for page in (
        "/",
        f"/executions/{quoted}",
        f"/executions/{quoted}/events",
        f"/executions/{quoted}/logs",
        "/feed",
        "/webhooks",
        f"/webhooks/{sub}",
    ):
        status, _, body = local.send("GET", page)
        assert status == 200, page
        for form in re.findall(r"<form\b.*?</form>", body.decode(), flags=re.S | re.I):
            if re.search(r'method="?post', form, flags=re.I):
                forms += 1
                assert 'name="csrf_token"' in form, (page, form[:300])
    assert forms >= 4  # stop, callback, add webhook, enable/disable, delete, redeliver
