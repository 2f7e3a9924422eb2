"""Signed webhooks: delivery to a real receiver on loopback, retries, crash redelivery,
filters, the address policy, admin API/CLI/pages."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from recorder.api import Durascope
from recorder.cli import main as cli
from recorder.followers.dispatcher import LEASE_NAME, Dispatcher, backoff_ms
from recorder.followers.models import Follower, WebhookAttempt, WebhookDelivery
from recorder.followers.sender import PostResult, Sender
from recorder.followers.webhooks import WebhookSettings, refused_address
from tests.conftest import register
from tests.webhook_receiver import Receiver, statuses
from viewer import create_app

ROOT = Path(__file__).resolve().parents[1]
FAST = WebhookSettings(
    retry_base_seconds=0.05, retry_max_seconds=0.3, poll_seconds=0.01, lease_seconds=2, timeout_seconds=5
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    if r.server is not None:
        r.down()


def _subscribe(client, receiver: Receiver, path: str, **fields: object) -> dict:
    r = client.post("/api/v1/webhooks", json={"url": receiver.url(path), **fields})
    assert r.status_code == 201, r.data
    sub = r.get_json()
    assert sub["secret"].startswith("whsec_")
    receiver.secrets[path] = sub["secret"]
    return sub


def test_signed_delivery_in_order_per_execution(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    register(ds, "fails", "th_basic.always_fails")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/all")
    disp = Dispatcher(ds.db, ds.settings, FAST)
    disp.start()
    try:
        arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(4)] + [ds.start("fails", "{}")]
        for arn in arns:
            ds.wait(arn, 60)
        ds.wait_for(lambda: len(receiver.at("/all")) >= 10, 30, "deliveries missing")
    finally:
        disp.stop()
    got = receiver.at("/all")
    assert not receiver.bad and len(got) == 10
    for arn in arns[:4]:
        assert statuses(got, arn) == ["RUNNING", "SUCCEEDED"]
    assert statuses(got, arns[4]) == ["RUNNING", "FAILED"]
    assert len({i for i, _ in got}) == 10 and len({e["id"] for _, e in got}) == 10
    deliveries = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
    assert len(deliveries) == 10 and all(d["state"] == "succeeded" for d in deliveries)
    # A loopback receiver is a private target: what it answers is not kept in the log.
    assert all(
        d["attemptLog"][0]["statusCode"] == 200 and d["attemptLog"][0]["responseExcerpt"] is None for d in deliveries
    )
    assert "secret" not in client.get(f"/api/v1/webhooks/{sub['id']}").get_json()


def test_receiver_down_then_up_loses_nothing(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/flaky")
    receiver.down()
    disp = Dispatcher(ds.db, ds.settings, FAST)
    disp.start()
    try:
        arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(6)]
        for arn in arns:
            ds.wait(arn, 60)

        def failed_attempts() -> int:
            ds_ = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
            return sum(1 for d in ds_ for a in d["attemptLog"] if not a["ok"])

        ds.wait_for(lambda: failed_attempts() >= 12, 30, "no failed attempts recorded")
        receiver.up()
        ds.wait_for(lambda: len(receiver.at("/flaky")) >= 12, 30, "not delivered after the receiver came back")
        ds.wait_for(
            lambda: all(
                d["state"] == "succeeded"
                for d in client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
            ),
            30,
            "arrivals not recorded",
        )
    finally:
        disp.stop()
    got = receiver.at("/flaky")
    assert not receiver.bad
    assert len({i for i, _ in got}) == 12
    for arn in arns:
        assert statuses(got, arn)[:2] == ["RUNNING", "SUCCEEDED"]
    deliveries = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
    assert all(d["state"] == "succeeded" for d in deliveries)
    retried = [d for d in deliveries if d["attempts"] > 1]
    assert retried and all(a["error"] for d in retried for a in d["attemptLog"][:-1])
    assert client.get(f"/api/v1/webhooks/{sub['id']}").get_json()["enabled"] is True


def test_crash_between_send_and_record_redelivers_same_id(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/crash")
    arn = ds.start("add-one", "{}")
    ds.wait(arn)
    env = {
        **os.environ,
        "DURASCOPE_TEST_CRASH_AFTER_SEND": "1",
        "DURASCOPE_WEBHOOKS_LEASE_SECONDS": "1",
        "DURASCOPE_WEBHOOKS_POLL_SECONDS": "0.01",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "--database-url", ds.settings.database_url, "webhooks", "dispatch"],
        env=env,
        cwd=ROOT,
        timeout=60,
        capture_output=True,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    first = receiver.at("/crash")
    assert len(first) == 1 and first[0][1]["detail"]["status"] == "RUNNING"
    pending = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries?state=pending").get_json()["deliveries"]
    assert first[0][0] in {d["webhookId"] for d in pending}  # sent but never recorded
    disp = Dispatcher(ds.db, ds.settings, FAST)
    disp.start()
    try:
        ds.wait_for(lambda: len(receiver.at("/crash")) >= 3, 30, "not redelivered after the crash")
    finally:
        disp.stop()
    got = receiver.at("/crash")
    assert not receiver.bad
    assert got[1][0] == first[0][0] and got[1][1] == first[0][1]  # same webhook-id, same event
    assert [e["detail"]["status"] for _, e in got] == ["RUNNING", "RUNNING", "SUCCEEDED"]


def test_filters_and_on_change_only(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    register(ds, "fails", "th_basic.always_fails")
    client = create_app(durascope=ds).test_client()
    _subscribe(client, receiver, "/failed", statuses=["FAILED"])
    _subscribe(client, receiver, "/fn", function="add")
    _subscribe(client, receiver, "/arn", function="arn:aws:lambda:us-east-1:123456789012:function:fa")
    _subscribe(client, receiver, "/vip", namePrefix="vip-")
    _subscribe(client, receiver, "/change", onChangeOnly=True)
    runs = [("add-one", None), ("add-one", None), ("fails", "vip-1"), ("fails", None), ("add-one", "vip-2")]
    arns = []
    for fn, name in runs:
        arns.append(ds.start(fn, "{}", name=name))
        ds.wait(arns[-1], 60)
    disp = Dispatcher(ds.db, ds.settings, FAST)
    try:
        for _ in range(20):
            disp.run_once()
    finally:
        disp.stop()
    assert not receiver.bad
    # Order is kept per execution; different executions may arrive in any order.
    assert sorted(e["detail"]["durableExecutionArn"] for _, e in receiver.at("/failed")) == sorted(arns[2:4])
    assert {e["detail"]["durableExecutionArn"] for _, e in receiver.at("/fn")} == {arns[0], arns[1], arns[4]}
    assert {e["detail"]["durableExecutionArn"] for _, e in receiver.at("/arn")} == {arns[2], arns[3]}
    assert {e["detail"]["durableExecutionArn"] for _, e in receiver.at("/vip")} == {arns[2], arns[4]}
    change = {(e["detail"]["durableExecutionArn"], e["detail"]["status"]) for _, e in receiver.at("/change")}
    # Per function: add-one SUCCEEDED (first), SUCCEEDED (same: skipped), SUCCEEDED (same: skipped);
    # fails FAILED (first), FAILED (same: skipped). RUNNING is never a terminal change.
    assert change == {(arns[0], "SUCCEEDED"), (arns[2], "FAILED")}


def test_disabled_after_failures_then_enable_and_redeliver(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/dis", maxFailures=3, description="<b>ops</b> team")
    receiver.down()
    disp = Dispatcher(ds.db, ds.settings, dataclasses.replace(FAST, disable_after_seconds=0.5))
    disp.start()
    try:
        arn = ds.start("add-one", "{}")
        ds.wait(arn)
        ds.wait_for(lambda: not client.get(f"/api/v1/webhooks/{sub['id']}").get_json()["enabled"], 30, "not disabled")
        got = client.get(f"/api/v1/webhooks/{sub['id']}").get_json()
        assert got["disabledReason"].startswith("disabled after failing for ")
        assert got["consecutiveFailures"] >= 3 and "consecutive failed delivery attempts" in got["disabledReason"]
        # Its pending deliveries wait for the enable, not for a retry time.
        waiting = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries?state=pending").get_json()["deliveries"]
        assert waiting and all(d["nextAttemptMs"] is None for d in waiting)
        assert "ConnectionRefused" in got["disabledReason"]
        html = client.get(f"/webhooks/{sub['id']}").data.decode()
        assert "consecutive failed delivery attempts" in html
        listing = client.get("/webhooks").data.decode()
        assert "&lt;b&gt;ops&lt;/b&gt;" in listing and "<b>ops</b>" not in listing
        receiver.up()
        assert client.post(f"/api/v1/webhooks/{sub['id']}/enable").get_json()["enabled"] is True
        ds.wait_for(lambda: len(receiver.at("/dis")) >= 2, 30, "not delivered after enable")
        deliveries = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
        first = min(deliveries, key=lambda d: d["position"])
        r = client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{first['id']}/redeliver")
        assert r.status_code == 202
        ds.wait_for(lambda: len(receiver.at("/dis")) >= 3, 30, "manual redeliver not sent")
        ds.wait_for(
            lambda: any(
                a["manual"]
                for d in client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
                for a in d["attemptLog"]
            ),
            10,
            "manual attempt not logged",
        )
    finally:
        disp.stop()
    ids = [i for i, _ in receiver.at("/dis")]
    assert ids[2] == first["webhookId"] and ids.count(first["webhookId"]) == 2
    assert client.post(f"/api/v1/webhooks/{sub['id']}/disable").get_json()["disabledReason"] == "disabled by a user"
    assert client.delete(f"/api/v1/webhooks/{sub['id']}").status_code == 204
    assert client.get(f"/api/v1/webhooks/{sub['id']}").status_code == 404
    assert client.get("/api/v1/webhooks").get_json()["webhooks"] == []


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"url": "ftp://example.com/x"}, "http:// or https://"),
        ({"url": "not a url"}, "spaces"),
        ({"url": "http://"}, "no host"),
        ({"url": "http://example.com:99999/"}, "not a valid URL"),
        ({}, "url is required"),
        ({"url": "http://127.0.0.1:9/", "statuses": ["DONE"]}, "unknown status"),
        ({"url": "http://127.0.0.1:9/", "function": "bad name!"}, "function must be"),
        ({"url": "http://127.0.0.1:9/", "namePrefix": "a/b"}, "namePrefix"),
        ({"url": "http://127.0.0.1:9/", "onChangeOnly": True, "statuses": ["RUNNING"]}, "RUNNING"),
        ({"url": "http://127.0.0.1:9/", "maxFailures": 0}, "maxFailures"),
        ({"url": "http://127.0.0.1:9/", "colour": "red"}, "unknown fields"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "link-local"),
        ({"url": "http://[fe80::1]:8080/"}, "link-local"),
        ({"url": "http://[::ffff:169.254.169.254]/"}, "link-local"),
        ({"url": "http://metadata.google.internal/computeMetadata/v1/"}, "metadata"),
        ({"url": "http://100.100.100.200/"}, "metadata"),
        ({"url": "http://[fd00:ec2::254]/"}, "metadata"),
    ],
)
def test_invalid_subscriptions_rejected(
    tmp_path: Path, body: dict, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    with Durascope.open(f"sqlite:///{tmp_path}/d.db", run_engine=False) as ds:
        client = create_app(durascope=ds).test_client()
        r = client.post("/api/v1/webhooks", json=body)
        assert r.status_code == 400 and r.get_json()["error"]["type"] == "InvalidParameterValueException"
        assert needle in r.get_json()["error"]["message"], r.get_json()
        assert client.get("/api/v1/webhooks").get_json()["webhooks"] == []


def test_private_addresses_allowed_by_flag_and_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", "1")
    with Durascope.open(f"sqlite:///{tmp_path}/d.db", run_engine=False) as ds:
        client = create_app(durascope=ds).test_client()
        assert client.post("/api/v1/webhooks", json={"url": "http://169.254.169.254/x"}).status_code == 201
    assert refused_address("169.254.170.2") and refused_address("fe80::1%eth0")
    assert refused_address("127.0.0.1") is None and refused_address("::1") is None  # loopback is allowed
    assert refused_address("10.1.2.3") is None and refused_address("192.168.1.5") is None
    delays = [backoff_ms(n, WebhookSettings(retry_base_seconds=1, retry_max_seconds=8)) for n in range(1, 7)]
    assert 500 <= delays[0] <= 1000 and 4000 <= delays[3] <= 8000 and all(d <= 8000 for d in delays)


def test_cli_webhooks_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    url = f"sqlite:///{tmp_path}/cli.db"
    run = CliRunner().invoke
    r = run(
        cli,
        [
            "--database-url",
            url,
            "webhooks",
            "add",
            "http://127.0.0.1:9/hook",
            "--status",
            "failed",
            "--status",
            "TIMED_OUT",
            "--function",
            "orders",
            "--name-prefix",
            "vip-",
            "--on-change-only",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    sub = json.loads(r.output)
    assert sub["secret"].startswith("whsec_") and sub["statuses"] == ["FAILED", "TIMED_OUT"]
    assert sub["function"] == "orders" and sub["namePrefix"] == "vip-" and sub["onChangeOnly"] is True
    listing = run(cli, ["--database-url", url, "webhooks", "list"])
    assert sub["id"] in listing.output and "whsec_" not in listing.output
    assert run(cli, ["--database-url", url, "webhooks", "disable", sub["id"]]).exit_code == 0
    assert "disabled" in run(cli, ["--database-url", url, "webhooks", "list"]).output
    assert run(cli, ["--database-url", url, "webhooks", "enable", sub["id"]]).exit_code == 0
    assert run(cli, ["--database-url", url, "webhooks", "remove", sub["id"]]).exit_code == 0
    assert "no webhook subscriptions" in run(cli, ["--database-url", url, "webhooks", "list"]).output
    bad = run(cli, ["--database-url", url, "webhooks", "add", "http://169.254.169.254/"])
    assert bad.exit_code == 1 and "link-local" in bad.output
    bad = run(cli, ["--database-url", url, "webhooks", "add", "gopher://x/"])
    assert bad.exit_code == 1 and "http:// or https://" in bad.output
    bad = run(
        cli,
        ["--database-url", url, "webhooks", "add", "http://127.0.0.1:9/", "--status", "RUNNING", "--on-change-only"],
    )
    assert bad.exit_code == 1 and "RUNNING" in bad.output
    missing = run(cli, ["--database-url", url, "webhooks", "disable", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output


# --- pruning ------------------------------------------------------------------------------------


def _backdate(ds: Durascope, delivery_ids: list[int], age_ms: int) -> None:
    """Make deliveries (and their attempt log) look ``age_ms`` old; pending ones stay pending."""
    d, a = WebhookDelivery.__table__, WebhookAttempt.__table__
    with ds.db.write() as conn:
        conn.execute(
            update(d)
            .where(d.c.id.in_(delivery_ids))
            .values(
                created_ms=d.c.created_ms - age_ms,
                next_attempt_ms=d.c.next_attempt_ms - age_ms,
                delivered_ms=d.c.delivered_ms - age_ms,
            )
        )
        conn.execute(update(a).where(a.c.delivery_id.in_(delivery_ids)).values(ts_ms=a.c.ts_ms - age_ms))


def _attempt_count(ds: Durascope, delivery_ids: list[int]) -> int:
    with ds.db.read() as s:
        return s.execute(select(func.count()).where(WebhookAttempt.delivery_id.in_(delivery_ids))).scalar_one()


def test_old_deliveries_pruned_by_the_periodic_work_pending_ones_never(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    ok = _subscribe(client, receiver, "/kept")
    dead_receiver = Receiver()
    dead_receiver.down()  # its port now refuses connections: those deliveries stay pending
    dead = client.post("/api/v1/webhooks", json={"url": dead_receiver.url("/gone"), "maxFailures": 10000}).get_json()
    ws = dataclasses.replace(FAST, prune_interval_seconds=0.2)
    assert ws.log_retention_days == 14
    disp = Dispatcher(ds.db, ds.settings, ws)
    disp.start()

    def deliveries(sub: dict) -> list[dict]:
        return client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]

    try:
        arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(3)]
        for arn in arns:
            ds.wait(arn, 60)
        ds.wait_for(lambda: len([d for d in deliveries(ok) if d["state"] == "succeeded"]) == 6, 30, "not delivered")
        ds.wait_for(lambda: len([d for d in deliveries(dead) if d["attemptLog"]]) >= 3, 30, "no failed attempts")
        executions = {d["executionId"] for d in deliveries(ok)}
        old_exec = sorted(executions)[:2]
        old = [d["id"] for d in deliveries(ok) if d["executionId"] in old_exec]
        pending_old = [d["id"] for d in deliveries(dead)]
        assert len(old) == 4 and _attempt_count(ds, old) == 4
        _backdate(ds, old + pending_old, 15 * 86_400_000)  # past the 14-day retention
        ds.wait_for(lambda: len(deliveries(ok)) == 2, 30, "old succeeded deliveries not pruned")
    finally:
        disp.stop()
    assert {d["executionId"] for d in deliveries(ok)} == executions - set(old_exec)
    assert _attempt_count(ds, old) == 0  # their delivery log went with them
    left = deliveries(dead)
    assert sorted(d["id"] for d in left) == sorted(pending_old) and all(d["state"] == "pending" for d in left)
    assert _attempt_count(ds, pending_old) >= 3
    # Retention 0 keeps everything; the setting comes from the environment.
    assert Dispatcher(ds.db, ds.settings, WebhookSettings(log_retention_days=0)).prune() == 0
    assert WebhookSettings.from_env({"DURASCOPE_WEBHOOKS_LOG_RETENTION_DAYS": "3"}).log_retention_days == 3


# --- the HTTP client ------------------------------------------------------------------------------


class Scripted:
    """A TCP server answering each request with the next canned response (raw bytes);
    ``close_after`` closes the connection after those responses."""

    def __init__(self, responses: list[bytes], close_after: frozenset[int] = frozenset()) -> None:
        self.responses = responses
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        n = 0
        while n < len(self.responses):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while n < len(self.responses):
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = int(
                        next(
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        )
                    )
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    buf = buf[length:]
                    try:
                        conn.sendall(self.responses[n])
                    except OSError:  # the client stopped reading (a body it does not drain)
                        pass
                    n += 1
                    if n - 1 in self.close_after:
                        break

    def url(self, path: str = "/hook?x=1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


def _post(url: str) -> PostResult:
    sender = Sender(WebhookSettings(timeout_seconds=5))
    try:
        return sender.post(url, b'{"a":1}', HEADERS)
    finally:
        sender.close()


def test_http_client_bodies_keep_alive_and_interim_responses() -> None:
    srv = Scripted(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!",
            b"HTTP/1.0 200 OK\r\n\r\nto the end\x00",  # close-delimited, with a NUL PostgreSQL cannot store
        ],
        close_after=frozenset({3, 4}),
    )
    sender = Sender(WebhookSettings(timeout_seconds=5))
    got = [sender.post(srv.url(), b'{"n":%d}' % i, HEADERS) for i in range(5)]
    sender.close()
    assert got == [
        PostResult(200, "ok", None),
        PostResult(201, "abcde", None),
        PostResult(204, "", None),
        PostResult(500, "oops!", None),
        PostResult(200, "to the end\ufffd", None),
    ]
    assert srv.connections == 2  # kept alive until "Connection: close"
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hook?x=1 HTTP/1.1" and f"Host: 127.0.0.1:{srv.port}".encode() in lines
    assert b"Content-Length: 7" in lines and b"webhook-id: msg_1" in lines and body == b'{"n":0}'


def test_http_client_stale_connection_retried_garbage_and_huge_bodies() -> None:
    # The server drops a kept-alive connection after the first answer: the next POST is
    # sent again on a fresh connection, not reported as a failure.
    srv = Scripted(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"],
        close_after=frozenset({0}),
    )
    sender = Sender(WebhookSettings(timeout_seconds=5))
    assert sender.post(srv.url(), b"{}", HEADERS).status == 200
    assert sender.post(srv.url(), b"{}", HEADERS) == PostResult(202, "", None) and srv.connections == 2
    sender.close()
    garbage = _post(Scripted([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]).url())
    assert garbage.status is None and garbage.error.startswith("ProtocolError")
    big = _post(Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 5_000_000]).url())
    assert big == PostResult(200, "x" * 512, None)  # not drained: that connection is closed instead
    refused = _post("http://127.0.0.1:9/")
    assert refused.status is None and "ConnectionRefused" in refused.error


def test_successor_parked_behind_a_retry_and_freed_by_a_manual_redeliver(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/park", maxFailures=100)
    receiver.down()
    arn = ds.start("add-one", "{}")
    ds.wait(arn)
    # Retries a minute away, so nothing but the redeliver below can send RUNNING again.
    disp = Dispatcher(ds.db, ds.settings, dataclasses.replace(FAST, retry_base_seconds=60, retry_max_seconds=120))

    def pending() -> dict[str, dict]:
        rows = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries?state=pending").get_json()["deliveries"]
        return {d["status"]: d for d in rows}

    try:
        disp.run_once()  # fan-out; RUNNING is sent and fails, SUCCEEDED waits behind it
        disp.run_once()  # SUCCEEDED is due but blocked: parked at RUNNING's retry time
        got = pending()
        assert got["RUNNING"]["attempts"] == 1 and got["SUCCEEDED"]["attempts"] == 0
        assert got["SUCCEEDED"]["nextAttemptMs"] == got["RUNNING"]["nextAttemptMs"]
        receiver.up()
        r = client.post(f"/api/v1/webhooks/{sub['id']}/deliveries/{got['RUNNING']['id']}/redeliver")
        assert r.status_code == 202
        disp.run_once()  # RUNNING (manual) succeeds and frees SUCCEEDED at once
        disp.run_once()
    finally:
        disp.stop()
    assert [e["detail"]["status"] for _, e in receiver.at("/park")] == ["RUNNING", "SUCCEEDED"]
    assert pending() == {}


def test_disabled_subscription_records_what_it_missed_and_enable_delivers_it(ds: Durascope, receiver: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = _subscribe(client, receiver, "/away")
    assert client.post(f"/api/v1/webhooks/{sub['id']}/disable").status_code == 200
    arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(3)]
    for arn in arns:
        ds.wait(arn, 60)
    disp = Dispatcher(ds.db, ds.settings, FAST)

    def deliveries() -> list[dict]:
        return client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]

    try:
        for _ in range(3):
            disp.run_once()
        # Recorded while disabled, waiting for the enable (no retry time), none sent.
        missed = deliveries()
        assert len(missed) == 6 and all(d["state"] == "pending" and d["nextAttemptMs"] is None for d in missed)
        assert client.get(f"/api/v1/webhooks/{sub['id']}").get_json()["deliveries"]["pending"] == 6
        assert receiver.at("/away") == []
        # What it missed outlives the execution itself (the retention purge, or a delete).
        assert ds.delete(arns[0]) > 0
        assert client.post(f"/api/v1/webhooks/{sub['id']}/enable").status_code == 200
        ds.wait_for(
            lambda: (disp.run_once() or True) and len(receiver.at("/away")) >= 6,
            30,
            "the backlog was not delivered after the enable",
        )
    finally:
        disp.stop()
    got = receiver.at("/away")
    assert not receiver.bad and len({i for i, _ in got}) == 6
    for arn in arns:
        assert statuses(got, arn) == ["RUNNING", "SUCCEEDED"]


_HOLD_LEASE = """
import sys, time
from recorder.config import Settings
from recorder.followers.dispatcher import Dispatcher
from recorder.followers.webhooks import WebhookSettings
from recorder.store.db import Database
db = Database(sys.argv[1])
d = Dispatcher(db, Settings.from_env(database_url=sys.argv[1]), WebhookSettings(lease_seconds=300))
d.run_once()
print(d.owner, flush=True)
time.sleep(120)
"""


def test_restarted_dispatcher_takes_a_dead_owners_lease_at_once(ds: Durascope) -> None:
    """A process of this host that holds the lease and is gone (killed, not restarted yet)
    does not make its successor wait out the lease; a live one keeps it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LEASE, ds.settings.database_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        dead_owner = proc.stdout.readline().strip()
        assert dead_owner, "the lease holder did not start"
        successor = Dispatcher(ds.db, ds.settings, dataclasses.replace(FAST, lease_seconds=300))
        successor.run_once()
        assert _lease_owner(ds) == dead_owner  # alive: its lease is respected
        proc.kill()
        proc.wait()
        successor.run_once()
        assert _lease_owner(ds) == successor.owner  # gone: taken at once, 300 s before it expires
        successor.stop()
    finally:
        proc.kill()
        proc.wait()
    assert _lease_owner(ds) is None  # released on stop


def _lease_owner(ds: Durascope) -> str | None:
    with ds.db.read() as s:
        return s.execute(select(Follower.owner).where(Follower.name == LEASE_NAME)).scalar()
