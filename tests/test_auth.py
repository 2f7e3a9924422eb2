"""SigV4 on the API when DURASCOPE_ACCESS_KEYS is set (what boto3 and the AWS CLI send)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from recorder.config import Settings
from tests.conftest import HANDLERS, remote_worker
from viewer.server import build_server

KEY, SECRET = "AKIDDURASCOPE", "s3cr3t-key"


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    settings = Settings.from_env(
        database_url=database_url, access_keys={KEY: SECRET, "other": "x"}, worker_concurrency=1
    )
    server, ds = build_server(settings, port=0, invoker="workers")
    ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


def client(url: str, key: str = KEY, secret: str = SECRET, unsigned: bool = False):
    cfg = Config(signature_version=UNSIGNED) if unsigned else None
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=cfg,
    )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_signed_requests_work_end_to_end_through_workers(url: str) -> None:
    lam = client(url)
    out = lam.invoke(FunctionName="add-one", Payload=b'{"a": 41}')
    assert out["Payload"].read() == b"42"  # the SDK in the worker signed its checkpoints too
    arn = out["ResponseMetadata"]["HTTPHeaders"]["x-amz-durable-execution-arn"]
    events = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    assert events[-1]["EventType"] == "ExecutionSucceeded"


@pytest.mark.parametrize(
    "kind,code,status",
    [
        ("unsigned", "MissingAuthenticationTokenException", 403),
        ("unknown key", "UnrecognizedClientException", 403),
        ("wrong secret", "InvalidSignatureException", 403),
    ],
)
def test_bad_credentials_are_refused_in_the_aws_shape(url: str, kind: str, code: str, status: int) -> None:
    lam = {
        "unsigned": lambda: client(url, unsigned=True),
        "unknown key": lambda: client(url, key="nobody"),
        "wrong secret": lambda: client(url, secret="guess"),
    }[kind]()
    with pytest.raises(ClientError) as exc:
        lam.list_durable_executions_by_function(FunctionName="add-one")
    assert _code(exc) == (code, status)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="add-one", Payload=b"{}")
    assert _code(exc) == (code, status)
    # Nothing was started by the refused Invoke.
    assert client(url).list_durable_executions_by_function(FunctionName="add-one")["DurableExecutions"] == []


def _signed(url: str, body: bytes, when: dt.datetime | None = None) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=f"{url}/2015-03-31/functions/add-one/invocations",
        data=body,
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    signer = botocore.auth.SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        real = botocore.auth.datetime.datetime

        class Frozen(real):
            @classmethod
            def utcnow(cls):
                return when.replace(tzinfo=None)

            @classmethod
            def now(cls, tz=None):
                return when if tz else when.replace(tzinfo=None)

        botocore.auth.datetime.datetime = Frozen
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = real
    return request


def _send(request: AWSRequest, body: bytes) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(request.url, data=body, method=request.method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_an_altered_body_and_an_old_timestamp_are_refused(url: str) -> None:
    body = b'{"a": 1}'
    assert _send(_signed(url, body), body)[0] == 202
    status, headers, answer = _send(_signed(url, body), b'{"a": 2}')
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert json.loads(answer)["Message"].startswith("The request signature we calculated does not match")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    status, headers, answer = _send(_signed(url, body, old), body)
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert "Signature expired" in json.loads(answer)["Message"]


def test_the_aws_cli_signs_and_is_accepted(url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "lambda",
            "list-durable-executions-by-function",
            "--function-name",
            "add-one",
            "--endpoint-url",
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "lambda",
            "list-durable-executions-by-function",
            "--function-name",
            "add-one",
            "--endpoint-url",
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "InvalidSignatureException" in bad.stderr


def test_worker_endpoints_require_a_signature(url: str) -> None:
    status, headers, _ = _send(AWSRequest(method="GET", url=f"{url}/durascope/runtime/functions"), b"")
    assert (status, headers.get("x-amzn-ErrorType")) == (403, "MissingAuthenticationTokenException")


def test_bad_access_key_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="id:secret"):
        Settings.from_env(env={"DURASCOPE_ACCESS_KEYS": "no-colon-here"})


def test_a_remote_worker_signs_its_requests(database_url: str, tmp_path: Path) -> None:
    """`durascope worker` with AWS credentials in its environment signs every call to the
    engine (its kept-alive connections included) and the SDK's checkpoints."""
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET}, worker_concurrency=1)
    server, ds = build_server(settings, port=0, invoker="workers", local_workers=False)
    ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    try:
        with remote_worker(url, "add-one", log=tmp_path / "worker.log", env=env):
            for a in (1, 2, 3):  # several invocations over the worker's connections
                done = ds.wait(ds.start("add-one", json.dumps({"a": a})), 60)
                assert (done.status, done.result) == ("SUCCEEDED", str(a + 1))
    finally:
        server.shutdown()
        server.server_close()
        ds.close()
