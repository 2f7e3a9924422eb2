"""A receiver cannot hold a sending thread: every attempt has an overall deadline (plain
HTTP and TLS, handshake included), and receivers that hold connections open do not stall
the deliveries of the other subscriptions."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.api import Durascope
from recorder.followers import webhooks as wh
from recorder.followers.dispatcher import Dispatcher
from recorder.followers.sender import PostResult, Sender
from recorder.followers.webhooks import WebhookSettings
from tests.conftest import register
from tests.webhook_receiver import Receiver, TcpServer, statuses


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _post_within(sender: Sender, url: str, bound: float = 20.0) -> PostResult:
    """The result of one POST, or a test failure when it has not ended after ``bound`` seconds."""
    out: list[PostResult] = []
    t = threading.Thread(target=lambda: out.append(sender.post(url, b'{"a":1}', {"webhook-id": "msg_1"})), daemon=True)
    t.start()
    t.join(bound)
    assert out, f"the attempt to {url} was still running after {bound} s"
    return out[0]


def test_an_attempt_ends_at_its_deadline_however_the_receiver_trickles(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    servers = {
        "http trickle": (TcpServer("trickle"), "http"),
        "tls trickle": (TcpServer("trickle", tls), "https"),
        "tls handshake": (TcpServer("silent"), "https"),
        "http hold": (TcpServer("hold"), "http"),
    }
    answering = TcpServer("answer", tls)
    sender = Sender(WebhookSettings(timeout_seconds=1.0))
    try:
        assert _post_within(sender, answering.url("https")).status == 200  # TLS works at all
        for name, (server, scheme) in servers.items():
            started = time.monotonic()
            res = _post_within(sender, server.url(scheme))
            assert res.status is None and res.error and "1 s deadline" in res.error, (name, res)
            assert time.monotonic() - started < 10, name
    finally:
        sender.close()
        for server, _ in servers.values():
            server.close()
        answering.close()


@pytest.fixture
def fast() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.down()


def test_receivers_that_hold_connections_do_not_stall_the_others(ds: Durascope, fast: Receiver) -> None:
    """Four subscriptions whose receivers hold every connection open for a minute, two
    sending threads: the receiver that answers still gets its deliveries."""
    register(ds, "add-one", "th_basic.add_one")
    holders = [TcpServer("hold") for _ in range(4)]
    for h in holders:
        wh.create_subscription(ds.db, wh.validate_spec(h.url(), max_failures=10_000))
    ws = WebhookSettings(
        concurrency=2,
        slow_seconds=0.3,
        timeout_seconds=60,
        poll_seconds=0.01,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
    )
    disp = Dispatcher(ds.db, ds.settings, ws)
    disp.start()
    try:
        for i in range(4):
            ds.wait(ds.start("add-one", json.dumps({"a": i})), 60)
        ds.wait_for(lambda: sum(h.held for h in holders) >= ws.concurrency, 30, "the holders were not reached")
        sub = wh.create_subscription(ds.db, wh.validate_spec(fast.url("/fast")))
        fast.secrets["/fast"] = sub["secret"]
        arns = [ds.start("add-one", json.dumps({"b": i})) for i in range(3)]
        for arn in arns:
            ds.wait(arn, 60)
        ds.wait_for(lambda: len(fast.at("/fast")) >= 6, 30, "the answering receiver was stalled by the holders")
        assert sum(h.held for h in holders) >= ws.concurrency  # still held while it was served
    finally:
        for h in holders:
            h.close()
        disp.stop()
    got = fast.at("/fast")
    assert not fast.bad
    for arn in arns:
        assert statuses(got, arn) == ["RUNNING", "SUCCEEDED"]
