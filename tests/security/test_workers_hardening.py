"""Worker processes hold no more than Lambda gives them and take no more than Lambda
takes: a response over 6 MB fails its invocation, an invocation's output is capped on
the worker host and at the engine, handlers see Lambda's environment variables and their
function's, not the engine's, and a remote worker does not speak plain http across a
network unless told to."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.engine.boundary import RESPONSE_LIMIT
from recorder.engine.logs import MAX_BYTES, MAX_LINES
from recorder.queries import execution_logs
from recorder.runtime_process import DURASCOPE_ADDED, LAMBDA_RESERVED, LAMBDA_UNRESERVED
from recorder.worker_backend import LOGS_BODY_LIMIT, InsecureEngineURL, require_secure_engine
from tests.conftest import HANDLERS, remote_worker
from viewer.server import build_server


class Engine:
    def __init__(self, ds: Durascope, port: int) -> None:
        self.ds = ds
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def take(self, function: str) -> str:
        """Act as a worker host: take the next invocation of ``function``; its request id."""
        status, headers, _ = self.call("GET", f"/durascope/runtime/{function}/next?wait=30&worker=test")
        assert status == 200, status
        return headers["lambda-runtime-aws-request-id"]


def _engine(database_url: str, local_workers: bool, host: str = "127.0.0.1") -> Iterator[Engine]:
    settings = Settings.from_env(database_url=database_url, worker_concurrency=1, max_invocation_attempts=1)
    server, ds = build_server(settings, host=host, port=0, invoker="workers", local_workers=local_workers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Engine(ds, server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from _engine(database_url, local_workers=True)


@pytest.fixture
def bare_engine(database_url: str) -> Iterator[Engine]:
    """An engine no worker is attached to: the test is the worker."""
    yield from _engine(database_url, local_workers=False)


def _invocation_errors(ds: Durascope, arn: str) -> list[dict[str, Any]]:
    return [
        e["InvocationCompletedDetails"]["Error"]["Payload"]
        for e in ds.history(arn)
        if e["EventType"] == "InvocationCompleted" and "Error" in e["InvocationCompletedDetails"]
    ]


TOO_LARGE = {
    "ErrorType": "Function.ResponseSizeTooLarge",
    "ErrorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
}


# --- response size ----------------------------------------------------------------------------


def test_a_response_over_6_mb_fails_the_invocation_as_in_lambda(engine: Engine) -> None:
    ds = engine.ds
    ds.register_function("oversized", "th_faults.oversized", code_dir=HANDLERS)
    arn = ds.start("oversized", "{}")
    done = ds.wait(arn, 60)
    assert done.status == "FAILED" and done.result is None
    assert [{k: e[k] for k in TOO_LARGE} for e in _invocation_errors(ds, arn)] == [TOO_LARGE]


def test_the_engine_refuses_a_response_over_6_mb_and_fails_its_invocation(bare_engine: Engine) -> None:
    ds = bare_engine.ds
    ds.register_function("any", "th_faults.oversized", code_dir=HANDLERS)
    over, at_limit = ds.start("any", "{}"), ds.start("any", "{}")

    status, headers, body = bare_engine.call(
        "POST", f"/durascope/runtime/any/invocation/{bare_engine.take('any')}/response", b"x" * (RESPONSE_LIMIT + 1)
    )
    assert status == 413 and headers["x-amzn-errortype"] == "RequestTooLargeException"
    assert "6291556 bytes" in json.loads(body)["message"]
    assert ds.wait(over, 30).status == "FAILED"
    assert [{k: e[k] for k in TOO_LARGE} for e in _invocation_errors(ds, over)] == [TOO_LARGE]

    # Lambda's limit is inclusive: a response of exactly 6,291,556 bytes is taken.
    envelope = b'{"Status": "SUCCEEDED", "Result": "%s"}'
    exact = envelope % (b"y" * (RESPONSE_LIMIT - len(envelope % b"")))
    assert len(exact) == RESPONSE_LIMIT
    status, _, _ = bare_engine.call(
        "POST", f"/durascope/runtime/any/invocation/{bare_engine.take('any')}/response", exact
    )
    assert status == 202
    assert ds.wait(at_limit, 30).status == "SUCCEEDED"


# --- output caps --------------------------------------------------------------------------------


def _stored(ds: Durascope, arn: str) -> tuple[list[str], str]:
    messages = [e.message for e in execution_logs(ds.db, arn)]
    return messages[:-1], messages[-1]


def test_a_worker_host_keeps_at_most_the_in_process_cap_of_output(engine: Engine) -> None:
    ds = engine.ds
    ds.register_function("loud", "th_faults.loud", code_dir=HANDLERS)
    arn = ds.start("loud", '{"lines": 3000}')  # 3 MB of output
    assert ds.wait(arn, 60).status == "SUCCEEDED"
    kept, note = _stored(ds, arn)
    assert 0 < len(kept) and sum(len(m) for m in kept) <= MAX_BYTES
    assert note == f"{3000 - len(kept)} more log lines were dropped (limit {MAX_LINES} lines, {MAX_BYTES} bytes)"


def test_the_logs_route_takes_one_capped_batch_per_invocation(bare_engine: Engine) -> None:
    ds = bare_engine.ds
    ds.register_function("any", "th_faults.oversized", code_dir=HANDLERS)
    arn = ds.start("any", "{}")
    request_id = bare_engine.take("any")
    path = f"/durascope/runtime/any/invocation/{request_id}/logs"

    status, headers, _ = bare_engine.call("POST", path, b"x" * (LOGS_BODY_LIMIT + 1))
    assert status == 413 and headers["x-amzn-errortype"] == "RequestTooLargeException"

    lines = [{"ts_ms": 1, "level": "STDOUT", "message": f"line {i}"} for i in range(MAX_LINES + 100)]
    status, _, _ = bare_engine.call("POST", path, json.dumps({"Lines": lines, "Dropped": 7}).encode())
    assert status == 202
    again = json.dumps({"Lines": lines[:10]}).encode()
    assert bare_engine.call("POST", path, again)[0] == 410

    kept, note = _stored(ds, arn)
    assert kept == [f"line {i}" for i in range(MAX_LINES)]
    assert note == f"107 more log lines were dropped (limit {MAX_LINES} lines, {MAX_BYTES} bytes)"


# --- environment --------------------------------------------------------------------------------


def test_handlers_see_lambdas_variables_and_their_functions_not_the_engines(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_ONLY_SECRET", "s3cr3t")
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")
    ds = engine.ds
    ds.register_function(
        "env", "th_faults.environment", code_dir=HANDLERS, env={"MODE": "mine", "AWS_LAMBDA_FUNCTION_NAME": "forged"}
    )
    done = ds.wait(ds.start("env", "{}"), 60)
    assert done.status == "SUCCEEDED", done.error
    names = set(json.loads(done.result or "[]"))
    allowed = set(LAMBDA_RESERVED) | set(LAMBDA_UNRESERVED) | set(DURASCOPE_ADDED) | {"MODE"}
    # What the interpreter itself adds when it starts (PEP 538 locale coercion).
    allowed |= {"LC_CTYPE"}
    assert names <= allowed, names - allowed
    assert {"MODE", "_HANDLER", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "AWS_REGION"} <= names
    assert "ENGINE_ONLY_SECRET" not in names and "DATABASE_PASSWORD" not in names


def test_a_function_cannot_override_what_lambda_reserves(engine: Engine) -> None:
    ds = engine.ds
    ds.register_function("whoami", "th_workers.whoami", code_dir=HANDLERS, env={"AWS_LAMBDA_FUNCTION_NAME": "forged"})
    done = ds.wait(ds.start("whoami", "{}"), 60)
    assert json.loads(done.result or "{}")["fn"] == "whoami"


# --- transport ----------------------------------------------------------------------------------


def _worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "worker", *args], capture_output=True, text=True, timeout=timeout
    )


def _outbound_address() -> str | None:
    """This host's address on its network (connecting a UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_remote_worker_refuses_plain_http_to_another_host() -> None:
    proc = _worker("--engine", "http://203.0.113.9:8000")  # never contacted: refused before
    assert proc.returncode != 0
    assert "refusing plain http to 203.0.113.9" in proc.stderr and "--insecure" in proc.stderr
    for url in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "https://203.0.113.9"):
        require_secure_engine(url, insecure=False)
    with pytest.raises(InsecureEngineURL):
        require_secure_engine("http://example.com:8000", insecure=False)


def test_insecure_lets_a_remote_worker_use_plain_http_across_the_network(tmp_path: Path) -> None:
    address = _outbound_address()
    if address is None:
        pytest.skip("this host has no network address besides loopback")
    for engine in _engine(f"sqlite:///{tmp_path}/d.db", local_workers=False, host="0.0.0.0"):
        engine.ds.register_function("whoami", "th_workers.whoami", code_dir=HANDLERS)
        url = f"http://{address}:{engine.port}"
        refused = _worker("--engine", url, "--function", "whoami")
        assert refused.returncode != 0 and "--insecure" in refused.stderr
        with remote_worker(url, "whoami", "--insecure"):
            assert engine.ds.wait(engine.ds.start("whoami", "{}"), 60).status == "SUCCEEDED"
