"""Signed webhooks: delivery to a real receiver on loopback, retries, crash redelivery,
filters, the address policy, admin API/CLI/pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from tests.conftest import register
from recorder.api import Durascope
from recorder.cli import main as cli
from recorder.followers.dispatcher import Dispatcher, backoff_ms
from recorder.followers.webhooks import WebhookSettings, refused_address
from viewer import create_app

ROOT = Path(__file__).resolve().parents[1]
FAST = WebhookSettings(retry_base_seconds=0.05, retry_max_seconds=0.3, poll_seconds=0.01, lease_seconds=2,
                       timeout_seconds=5)


class Receiver:
    """A loopback HTTP receiver that verifies Standard Webhooks signatures; can go down and up."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.secrets: dict[str, str] = {}  # path -> secret
        self.bad: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    def up(self) -> None:
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                secret = recv.secrets.get(self.path)
                try:
                    event = Webhook(secret).verify(body, dict(self.headers)) if secret else json.loads(body)
                    if secret is None:
                        recv.bad.append("no secret for " + self.path)
                except Exception as exc:  # noqa: BLE001
                    recv.bad.append(repr(exc))
                    event = None
                with recv.lock:
                    recv.received.append((self.headers["webhook-id"], event, self.path))  # type: ignore[arg-type]
                self.send_response(200)
                self.send_header("Content-Length", "8")
                self.end_headers()
                self.wfile.write(b"received")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[str, dict]]:
        with self.lock:
            return [(i, e) for i, e, p in self.received if p == path]  # type: ignore[misc]


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


def _statuses(events: list[tuple[str, dict]], arn: str) -> list[str]:
    return [e["detail"]["status"] for _, e in events if e["detail"]["durableExecutionArn"] == arn]


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
        assert _statuses(got, arn) == ["RUNNING", "SUCCEEDED"]
    assert _statuses(got, arns[4]) == ["RUNNING", "FAILED"]
    assert len({i for i, _ in got}) == 10 and len({e["id"] for _, e in got}) == 10
    deliveries = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
    assert len(deliveries) == 10 and all(d["state"] == "succeeded" for d in deliveries)
    assert all(d["attemptLog"][0]["statusCode"] == 200 and d["attemptLog"][0]["responseExcerpt"] == "received"
               for d in deliveries)
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
        time.sleep(0.3)
    finally:
        disp.stop()
    got = receiver.at("/flaky")
    assert not receiver.bad
    assert len({i for i, _ in got}) == 12
    for arn in arns:
        assert _statuses(got, arn)[:2] == ["RUNNING", "SUCCEEDED"]
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
    env = {**os.environ, "DURASCOPE_TEST_CRASH_AFTER_SEND": "1", "DURASCOPE_WEBHOOKS_LEASE_SECONDS": "1",
           "DURASCOPE_WEBHOOKS_POLL_SECONDS": "0.01", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "recorder.cli", "--database-url", ds.settings.database_url,
                           "webhooks", "dispatch"], env=env, cwd=ROOT, timeout=60, capture_output=True)
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
    disp = Dispatcher(ds.db, ds.settings, FAST)
    disp.start()
    try:
        arn = ds.start("add-one", "{}")
        ds.wait(arn)
        ds.wait_for(lambda: not client.get(f"/api/v1/webhooks/{sub['id']}").get_json()["enabled"], 30,
                    "not disabled")
        got = client.get(f"/api/v1/webhooks/{sub['id']}").get_json()
        assert "3 consecutive failed delivery attempts" in got["disabledReason"]
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
        ds.wait_for(lambda: any(a["manual"] for d in client.get(f"/api/v1/webhooks/{sub['id']}/deliveries")
                                .get_json()["deliveries"] for a in d["attemptLog"]), 10, "manual attempt not logged")
    finally:
        disp.stop()
    ids = [i for i, _ in receiver.at("/dis")]
    assert ids[2] == first["webhookId"] and ids.count(first["webhookId"]) == 2
    assert client.post(f"/api/v1/webhooks/{sub['id']}/disable").get_json()["disabledReason"] == "disabled by a user"
    assert client.delete(f"/api/v1/webhooks/{sub['id']}").status_code == 204
    assert client.get(f"/api/v1/webhooks/{sub['id']}").status_code == 404
    assert client.get("/api/v1/webhooks").get_json()["webhooks"] == []


@pytest.mark.parametrize("body, needle", [
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
])
def test_invalid_subscriptions_rejected(tmp_path: Path, body: dict, needle: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    with Durascope.open(f"sqlite:///{tmp_path}/d.db", run_engine=False) as ds:
        client = create_app(durascope=ds).test_client()
        r = client.post("/api/v1/webhooks", json=body)
        assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
        assert needle in r.get_json()["message"], r.get_json()
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
    r = run(cli, ["--database-url", url, "webhooks", "add", "http://127.0.0.1:9/hook", "--status", "failed",
                  "--status", "TIMED_OUT", "--function", "orders", "--name-prefix", "vip-", "--on-change-only",
                  "--json"])
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
    bad = run(cli, ["--database-url", url, "webhooks", "add", "http://127.0.0.1:9/", "--status", "RUNNING",
                    "--on-change-only"])
    assert bad.exit_code == 1 and "RUNNING" in bad.output
    missing = run(cli, ["--database-url", url, "webhooks", "disable", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output
