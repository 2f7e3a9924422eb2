"""A SigV4 signature covers the body received, is answered once, and costs nothing to refuse.

Before: with ``x-amz-content-sha256`` among the signed headers the declared hash was
trusted and the body never hashed, so a captured request verified with any other body;
``UNSIGNED-PAYLOAD`` was accepted everywhere; the same signed request could be sent again;
and an unauthenticated request's body (up to 64 MiB) was read before anything was checked.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from recorder.api import Durascope
from recorder.config import Settings
from tests.conftest import HANDLERS, running_server

KEY, SECRET = "AKIDBODY", "body-secret"


@dataclass(frozen=True)
class Signed:
    port: int
    ds: Durascope

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def names(self) -> list[str]:
        lam = boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
        return sorted(
            e["DurableExecutionName"]
            for e in lam.list_durable_executions_by_function(FunctionName="add-one")["DurableExecutions"]
        )


@pytest.fixture
def signed(database_url: str) -> Iterator[Signed]:
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET})
    with running_server(settings, run_engine=False, local_workers=False) as (server, ds):
        ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
        yield Signed(server.server_port, ds)


def _invoke_request(s: Signed, body: bytes, name: str, content_sha256: str | None) -> AWSRequest:
    headers = {"X-Amz-Invocation-Type": "Event", "X-Amz-Durable-Execution-Name": name}
    if content_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(
        method="POST", url=f"{s.url}/2015-03-31/functions/add-one/invocations", data=body, headers=headers
    )
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    return request


def _raw(s: Signed, request: AWSRequest, body: bytes, send_body: bool = True, timeout: float = 10.0) -> tuple[int, str]:
    """Send over a plain socket (the body may be withheld); (status, x-amzn-ErrorType)."""
    path = request.url.split(str(s.port), 1)[1]
    head = [
        f"{request.method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{s.port}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in ("host", "content-length")]
    with socket.create_connection(("127.0.0.1", s.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body if send_body else b""))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    error = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in answer.split(b"\r\n")
            if line.lower().startswith(b"x-amzn-errortype:")
        ),
        "",
    )
    return status, error


def test_a_declared_body_hash_must_be_the_hash_of_the_body_received(signed: Signed) -> None:
    body = b'{"a": 1}'
    captured = _invoke_request(signed, body, "first", hashlib.sha256(body).hexdigest())
    assert _raw(signed, captured, body) == (202, "")
    # The captured headers with another body: the declared hash no longer matches.
    forged = _invoke_request(signed, body, "second", hashlib.sha256(body).hexdigest())
    assert _raw(signed, forged, b'{"a": 666}') == (403, "InvalidSignatureException")
    assert signed.names() == ["first"]


def test_unsigned_payloads_are_refused(signed: Signed) -> None:
    request = _invoke_request(signed, b'{"a": 1}', "unsigned", "UNSIGNED-PAYLOAD")
    assert _raw(signed, request, b'{"a": 1}') == (403, "InvalidSignatureException")
    assert signed.names() == []


def test_a_signature_is_answered_once(signed: Signed) -> None:
    body = b'{"a": 1}'
    captured = _invoke_request(signed, body, "once", None)
    assert _raw(signed, captured, body) == (202, "")
    assert _raw(signed, captured, body) == (429, "TooManyRequestsException")
    # A request the server did not act on may be retried with the very same signature
    # (botocore re-signs a retry; within the same second that is the same signature).
    missing = AWSRequest(
        method="POST",
        url=f"{signed.url}/2015-03-31/functions/nope/invocations",
        data=body,
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(missing)
    assert _raw(signed, missing, body)[0] == 404
    assert _raw(signed, missing, body) == (429, "TooManyRequestsException")  # a 4xx was an answer
    assert signed.names() == ["once"]


def test_identical_calls_from_boto3_all_get_through(signed: Signed) -> None:
    """SigV4 has no nonce: identical calls signed in one second carry one signature. Reads
    are never refused; an identical write is refused as a replay with a retryable error,
    which boto3 retries after its back-off, signed anew."""
    lam = boto3.client(
        "lambda",
        endpoint_url=signed.url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )
    for _ in range(20):
        lam.list_durable_executions_by_function(FunctionName="add-one")
    for _ in range(3):
        assert lam.invoke(FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 1}')["StatusCode"] == 202
    assert len(signed.names()) == 3


def test_nothing_is_read_before_the_header_is_checked(signed: Signed) -> None:
    # Headers that announce a body the client never sends: the server answers at once
    # instead of waiting for it.
    body = b"x" * 1000
    unknown = AWSRequest(method="POST", url=f"{signed.url}/2015-03-31/functions/add-one/invocations", data=body)
    SigV4Auth(Credentials("nobody", "guess"), "lambda", "us-east-1").add_auth(unknown)
    assert _raw(signed, unknown, body, send_body=False, timeout=5) == (403, "UnrecognizedClientException")
    stale = AWSRequest(
        method="POST",
        url=f"{signed.url}/2015-03-31/functions/add-one/invocations",
        data=body,
        headers={"X-Amz-Date": "20200101T000000Z"},
    )
    stale.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={KEY}/20200101/us-east-1/lambda/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
    )
    assert _raw(signed, stale, body, send_body=False, timeout=5) == (403, "InvalidSignatureException")
    # A body over the route's limit is refused by its Content-Length, unread.
    huge = AWSRequest(method="POST", url=f"{signed.url}/2015-03-31/functions/add-one/invocations", data=b"")
    huge.headers["Authorization"] = "AWS4-HMAC-SHA256 nonsense"
    status, error = _raw(signed, huge, b"x" * (64 * 1024 * 1024), send_body=False, timeout=5)
    assert (status, error) == (413, "RequestTooLargeException")
