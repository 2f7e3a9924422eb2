"""A function's runtimes sign with a key of their own that can only checkpoint and read that
function's executions: handler code never holds a viewer login or a full API credential."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from recorder.api import Durascope
from recorder.config import Settings
from recorder.sigv4 import KeyRing, sign_headers
from tests.conftest import HANDLERS, remote_worker, running_server
from viewer import create_app

KEY, SECRET = "AKIDADMIN", "admin-secret"


@dataclass(frozen=True)
class Deployment:
    url: str
    ds: Durascope
    mine: str  # an execution of add-one
    theirs: str  # an execution of another function

    def client(self, key: str, secret: str):
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )


@pytest.fixture
def deployment(database_url: str) -> Iterator[Deployment]:
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET})
    with running_server(settings, run_engine=False, local_workers=False) as (server, ds):
        ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
        ds.register_function("other", "th_basic:add_one", code_dir=HANDLERS)
        yield Deployment(
            f"http://127.0.0.1:{server.server_port}", ds, ds.start("add-one", '{"a": 1}'), ds.start("other", '{"a": 2}')
        )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_runtime_key_reads_and_checkpoints_only_its_own_function(deployment: Deployment) -> None:
    key_id, secret = KeyRing({KEY: SECRET}).runtime_credentials("add-one")
    assert key_id == "DSRT.add-one" and secret not in (SECRET, "")
    runtime = deployment.client(key_id, secret)
    assert runtime.get_durable_execution(DurableExecutionArn=deployment.mine)["Status"] == "RUNNING"
    assert runtime.get_durable_execution_history(DurableExecutionArn=deployment.mine)["Events"]
    with pytest.raises(ClientError) as exc:  # past the access rule: the control plane judges the token
        runtime.get_durable_execution_state(DurableExecutionArn=deployment.mine, CheckpointToken="bogus")
    assert _code(exc) == ("InvalidParameterValueException", 400)


@pytest.mark.parametrize("call", ["other function", "invoke", "stop", "list", "callback"])
def test_a_runtime_key_can_do_nothing_else(deployment: Deployment, call: str) -> None:
    runtime = deployment.client(*KeyRing({KEY: SECRET}).runtime_credentials("add-one"))
    with pytest.raises(ClientError) as exc:
        {
            "other function": lambda: runtime.get_durable_execution(DurableExecutionArn=deployment.theirs),
            "invoke": lambda: runtime.invoke(FunctionName="add-one", Payload=b'{"a": 5}'),
            "stop": lambda: runtime.stop_durable_execution(DurableExecutionArn=deployment.mine),
            "list": lambda: runtime.list_durable_executions_by_function(FunctionName="add-one"),
            "callback": lambda: runtime.send_durable_execution_callback_heartbeat(CallbackId="QUJD"),
        }[call]()
    assert _code(exc) == ("AccessDeniedException", 403)
    assert deployment.ds.describe(deployment.mine).status == "RUNNING"
    assert (
        len(
            deployment.client(KEY, SECRET).list_durable_executions_by_function(FunctionName="add-one")[
                "DurableExecutions"
            ]
        )
        == 1
    )


def test_a_runtime_key_is_no_login_and_no_relay_key(deployment: Deployment) -> None:
    key_id, secret = KeyRing({KEY: SECRET}).runtime_credentials("add-one")
    # Not a relay credential: it cannot list functions (their environments) or take invocations.
    import http.client

    host, port = deployment.url.removeprefix("http://").split(":")
    for path in ("/durascope/runtime/functions", "/durascope/runtime/add-one/next?wait=0"):
        headers = sign_headers("GET", deployment.url + path, None, key_id, secret, "us-east-1")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 403 and b"AccessDeniedException" in body and b"th_basic" not in body, path
        conn.close()
    # Not a viewer login either.
    app = create_app(Settings.from_env(database_url=deployment.ds.settings.database_url, access_keys={KEY: SECRET}))
    try:
        c = app.test_client()
        page = c.get("/login").get_data(as_text=True)
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = c.post("/login", data={"csrf_token": token, "access_key_id": key_id, "secret": secret})
        assert r.status_code == 401
    finally:
        app.extensions["durascope"].close()


def test_runtime_keys_change_with_the_configured_keys() -> None:
    one = KeyRing({KEY: SECRET}).runtime_credentials("add-one")
    assert KeyRing({KEY: SECRET}).runtime_credentials("add-one") == one  # every engine derives the same
    assert KeyRing({KEY: "rotated"}).runtime_credentials("add-one") != one
    assert KeyRing({KEY: SECRET}).runtime_credentials("other") != one
    assert KeyRing({}).get("DSRT.add-one") is None  # no keys, no runtime keys
    assert json.dumps(dict(KeyRing({KEY: SECRET}))) == json.dumps({KEY: SECRET})


def _whose_key(ds: Durascope, url: str) -> dict[str, object]:
    lam = boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )
    out = lam.invoke(FunctionName="whose-key", Payload=json.dumps({"admin": SECRET}).encode())
    assert "FunctionError" not in out, out["Payload"].read()
    return json.loads(out["Payload"].read())


def test_local_runtimes_sign_with_their_functions_key(database_url: str) -> None:
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET}, worker_concurrency=1)
    with running_server(settings, invoker="workers") as (server, ds):
        ds.register_function("whose-key", "th_workers:whose_key", code_dir=HANDLERS)
        # The execution succeeds: its checkpoints, signed with the narrow key, were accepted.
        assert _whose_key(ds, f"http://127.0.0.1:{server.server_port}") == {
            "key_id": "DSRT.whose-key",
            "secret_is_admins": False,
        }


def test_a_remote_workers_runtimes_get_the_narrow_key_not_the_hosts(database_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env(database_url=database_url, access_keys={KEY: SECRET}, worker_concurrency=1)
    with running_server(settings, invoker="workers", local_workers=False) as (server, ds):
        ds.register_function("whose-key", "th_workers:whose_key", code_dir=HANDLERS)
        url = f"http://127.0.0.1:{server.server_port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        with remote_worker(url, "whose-key", log=tmp_path / "worker.log", env=env):
            assert _whose_key(ds, url) == {"key_id": "DSRT.whose-key", "secret_is_admins": False}
