"""Webhooks cannot be pointed at cloud metadata: every IPv6 form that carries a refused IPv4
address, the other clouds' metadata addresses, the address actually connected to (DNS
rebinding); and what a private target answers stays out of the delivery log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recorder.api import Durascope, wait_until
from recorder.followers.addresses import REFUSED, REFUSED_HOSTS, is_private, refused_address
from recorder.followers.dispatcher import Dispatcher
from recorder.followers.sender import Sender
from recorder.followers.webhooks import WebhookSettings
from tests.conftest import register
from tests.webhook_receiver import Receiver, TcpServer
from viewer import create_app

REFUSED_URLS = [
    # 169.254.169.254 (AWS, Google Cloud, Azure, Oracle, DigitalOcean, OpenStack metadata) in every form
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated
    "http://[::a9fe:a9fe]/",  # IPv4-compatible
    "http://[::169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 well-known prefix
    "http://[64:ff9b::169.254.169.254]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",  # NAT64 local-use prefix, /96 embedding
    "http://[64:ff9b:1:a9fe:a9:fe00::]/",  # ... /48 embedding (RFC 6052: bits 64-71 skipped)
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254
    "http://[fe80::a9fe:a9fe]/",  # OpenStack's IPv6 metadata (link-local)
    "http://169.254.170.2/v2/credentials",  # ECS task metadata
    "http://169.254.170.23/",  # EKS Pod Identity
    # the other clouds' metadata addresses, and their embedded forms
    "http://[fd00:ec2::254]/",
    "http://[fd00:ec2::23]/",
    "http://[fd20:ce::254]/computeMetadata/v1/",
    "http://168.63.129.16/machine",
    "http://[::ffff:168.63.129.16]/",
    "http://[64:ff9b::a83f:8110]/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[2002:6464:64c8::]/",
    "http://192.0.0.192/latest/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.tencentyun.com/",
]
ALLOWED_URLS = [
    "http://127.0.0.1:9/",
    "http://[::1]:9/",
    "http://10.0.0.5/",
    "http://[::ffff:10.0.0.5]/",
    "http://[2002:a00:5::]/",
    "http://[64:ff9b::808:808]/",
    "http://192.168.1.5:8080/hook",
]


def test_metadata_addresses_refused_in_every_form(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    with Durascope.open(database_url, run_engine=False) as ds:
        client = create_app(durascope=ds).test_client()
        let_through = []
        for url in REFUSED_URLS:
            r = client.post("/api/v1/webhooks", json={"url": url})
            if r.status_code != 400 or "url refused" not in r.get_json()["error"]["message"]:
                let_through.append((url, r.status_code, r.get_json()))
        assert not let_through
        assert client.get("/api/v1/webhooks").get_json()["webhooks"] == []  # refusals changed nothing
        for url in ALLOWED_URLS:
            r = client.post("/api/v1/webhooks", json={"url": url})
            assert r.status_code == 201, (url, r.get_json())
    message = refused_address("64:ff9b::a9fe:a9fe")
    assert message and message.startswith("64:ff9b::a9fe:a9fe carries 169.254.169.254")


def test_every_refused_address_names_its_source() -> None:
    assert len(REFUSED) >= 8 and REFUSED_HOSTS
    for entry in REFUSED:
        assert entry.what and ("https://" in entry.source or "RFC" in entry.source), entry
    assert all(source.startswith("https://") for source in REFUSED_HOSTS.values())


def test_the_address_connected_to_is_checked_not_the_name() -> None:
    """DNS rebinding: a name that resolved to an allowed address when the subscription was
    made may resolve to a refused one later. The check runs on the peer of the connection
    itself, before any byte is sent. A refused address is not reachable from a test, so
    the policy here refuses loopback, and the URL names it ``localhost``."""
    listener = TcpServer("hold")
    sender = Sender(
        WebhookSettings(timeout_seconds=5),
        refuse=lambda addr: "a refused address" if addr in ("127.0.0.1", "::1") else None,
    )
    try:
        res = sender.post(f"http://localhost:{listener.port}/hook", b"{}", {"webhook-id": "msg_1"})
        https = sender.post(f"https://localhost:{listener.port}/hook", b"{}", {"webhook-id": "msg_2"})
        wait_until(lambda: listener.accepted >= 2, 10, "the sender did not connect")
    finally:
        sender.close()
        listener.close()
    assert res.status is None and res.error.startswith("refused: a refused address")
    assert https.status is None and https.error.startswith("refused: a refused address")
    assert listener.received == b""  # connected, then not a byte: no TLS hello either


@pytest.fixture
def talker() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.down()


def test_what_a_private_target_answers_is_not_kept(ds: Durascope, talker: Receiver) -> None:
    register(ds, "add-one", "th_basic.add_one")
    client = create_app(durascope=ds).test_client()
    sub = client.post("/api/v1/webhooks", json={"url": talker.url("/internal")}).get_json()
    talker.secrets["/internal"] = sub["secret"]
    arn = ds.start("add-one", "{}")
    ds.wait(arn)
    disp = Dispatcher(ds.db, ds.settings, WebhookSettings(poll_seconds=0.01))
    try:
        ds.wait_for(lambda: disp.run_once() or len(talker.at("/internal")) >= 2, 30, "not delivered")
    finally:
        disp.stop()
    deliveries = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").get_json()["deliveries"]
    attempts = [a for d in deliveries for a in d["attemptLog"]]
    assert attempts and all(a["statusCode"] == 200 and a["ok"] for a in attempts)
    assert all(a["responseExcerpt"] is None for a in attempts)  # the receiver answered "received"
    for private in (
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "fd12::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
    ):
        assert is_private(private), private
    for public in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert not is_private(public), public
