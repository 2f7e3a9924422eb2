"""One access rule, from the route that matched: encoded paths never get past it.

Every route family is tried unsigned and not logged in, over real HTTP, with its path
written as a client may write it: a percent-encoded letter in each segment, and ``%2F`` for
a slash. Before the rule, ``/%64urascope/runtime/functions`` answered every function's
environment to anyone (the signature check looked at the raw path, Flask routed on the
decoded one).
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from recorder.config import Settings
from tests.conftest import HANDLERS, running_server

KEY, SECRET = "AKIDACCESS", "access-rule-secret"
ENV_SECRET = "do-not-leak-7f3a"
INPUT_MARK = "input-9c2e"


@dataclass(frozen=True)
class Served:
    host: str
    port: int
    arn: str
    callback_id: str


@pytest.fixture
def served(database_url: str) -> Iterator[Served]:
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET})
    with running_server(settings, run_engine=False, local_workers=False) as (server, ds):
        ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS, env={"API_TOKEN": ENV_SECRET})
        arn = ds.start("add-one", json.dumps({"a": 1, "mark": INPUT_MARK}))
        yield Served("127.0.0.1", server.server_port, arn, "Y2FsbGJhY2s=")


def _encodings(path: str) -> list[str]:
    """The path as written, each segment with one letter percent-encoded, and each slash
    after the first written as %2F."""
    variants = [path]
    segments = path.split("/")
    for i, segment in enumerate(segments):
        m = re.search(r"[a-z]", segment)
        if m:
            encoded = segment[:m.start()] + f"%{ord(m.group()):02x}" + segment[m.end():]
            variants.append("/".join([*segments[:i], encoded, *segments[i + 1:]]))
    for i in range(1, len(segments) - 1):
        variants.append("/".join(segments[:i + 1]) + "%2F" + "/".join(segments[i + 1:]))
    return variants


def _routes(s: Served) -> list[tuple[str, str]]:
    arn = s.arn.replace("/", "%2F").replace(":", "%3A")
    return [
        # the worker runtime relay
        ("GET", "/durascope/runtime/functions"),
        ("GET", "/durascope/runtime/add-one/next?wait=0"),
        ("POST", "/durascope/runtime/add-one/invocation/req-1/response"),
        ("POST", "/durascope/runtime/add-one/invocation/req-1/error"),
        ("POST", "/durascope/runtime/add-one/invocation/req-1/logs"),
        # the Lambda API
        ("POST", "/2015-03-31/functions/add-one/invocations"),
        ("GET", "/2025-12-01/functions/add-one/durable-executions"),
        ("GET", f"/2025-12-01/durable-executions/{arn}"),
        ("GET", f"/2025-12-01/durable-executions/{arn}/history"),
        ("POST", f"/2025-12-01/durable-executions/{arn}/stop"),
        ("POST", f"/2025-12-01/durable-execution-callbacks/{s.callback_id}/succeed"),
        # the viewer's pages and their JSON twins
        ("GET", "/"),
        ("GET", "/export.zip"),
        ("GET", f"/executions/{arn}"),
        ("GET", f"/executions/{arn}/history.json"),
        ("GET", f"/executions/{arn}/events"),
        ("GET", f"/executions/{arn}/logs"),
        ("POST", f"/executions/{arn}/stop"),
        ("POST", f"/executions/{arn}/replay-check"),
        ("POST", f"/api/v1/executions/{arn}/replay-check"),
        ("GET", "/functions"),
        ("GET", "/functions/add-one"),
        ("GET", "/api/v1/functions"),
        ("GET", "/api/v1/functions/add-one/stats"),
        ("GET", "/api/v1/executions"),
        ("GET", f"/api/v1/executions/{arn}"),
        ("GET", "/api/v1/status-changes"),
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/feed"),
        ("GET", "/errors"),
        ("GET", "/search?q=input"),
        ("GET", "/api/v1/errors"),
        ("GET", "/api/v1/search?q=input"),
        ("GET", f"/diff?a={arn}&b={arn}"),
        ("GET", f"/api/v1/diff?a={arn}&b={arn}"),
        ("GET", "/waiting"),
        ("POST", "/waiting"),
        ("GET", "/api/v1/waiting"),
        ("GET", "/webhooks"),
        ("POST", "/webhooks"),
    ]


def _send(s: Served, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
          timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(s.host, s.port, timeout=timeout)
    try:
        conn.request(method, path, body=body if method != "GET" else None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_no_route_answers_an_unsigned_request_however_its_path_is_encoded(served: Served) -> None:
    tried = 0
    for method, route in _routes(served):
        path, _, query = route.partition("?")
        for variant in _encodings(path):
            target = variant + (f"?{query}" if query else "")
            body = b'{"Url": "http://127.0.0.1:9/x"}' if method == "POST" else b""
            status, headers, answer = _send(served, method, target, body,
                                            {"Content-Type": "application/json"} if body else {})
            tried += 1
            where = f"{method} {target} -> {status} {answer[:200]!r}"
            assert ENV_SECRET.encode() not in answer, where
            assert INPUT_MARK.encode() not in answer, where
            if status == 302:  # a page sends a browser to the login, and nothing else
                assert method == "GET" and headers["location"].startswith("/login"), where
            else:
                assert status in (401, 403), where
    assert tried > 100
    # And nothing was done by any of them: the execution was neither stopped nor answered.
    ok, _, _ = _send(served, "GET", "/login")
    assert ok == 200


def test_the_login_page_and_static_assets_stay_open(served: Served) -> None:
    assert _send(served, "GET", "/login")[0] == 200
    status, headers, _ = _send(served, "GET", "/static/viewer.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert _send(served, "GET", "/favicon.ico")[0] == 200
    assert _send(served, "GET", "/static/execution.js")[0] == 200
    status, headers, _ = _send(served, "GET", "/assets/plotly.min.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")


def test_an_unknown_path_is_denied_not_described(served: Served) -> None:
    for path in ("/nothing-here", "/%64urascope/nothing", "/api/v1/nothing", "/2025-12-01/nothing"):
        status, _, answer = _send(served, "GET", path)
        assert status in (302, 401, 403), (path, status)
        assert b"Unknown operation" not in answer


def test_a_signed_request_still_reaches_the_runtime_relay(served: Served) -> None:
    from recorder.sigv4 import sign_headers

    url = f"http://{served.host}:{served.port}/durascope/runtime/functions"
    headers = sign_headers("GET", url, None, KEY, SECRET, "us-east-1")
    status, _, answer = _send(served, "GET", "/durascope/runtime/functions", headers=headers)
    assert status == 200
    assert ENV_SECRET in answer.decode()  # a key holder still gets the configuration
