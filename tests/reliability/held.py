"""Executions of ``tests/handlers/th_faults.ledgered`` held in the middle of a step while
a fault test injects its fault (shared by the fault tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from recorder.api import Durascope, wait_until
from tests.conftest import HANDLERS
from tests.reliability.conftest import TAG_VARIABLE

STEPS = 3


def lambda_client(url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def start_held(url: str, ledger: Path, names: list[str]) -> dict[str, str]:
    """Executions of ``ledgered`` that stop in their step 1 until ``ledger/release`` exists;
    returns name -> ARN once every one of them is holding there."""
    client = lambda_client(url)
    arns = {}
    for name in names:
        payload = {"ledger": str(ledger), "name": name, "steps": STEPS, "hold": 1}
        r = client.invoke(
            FunctionName="ledgered",
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
            DurableExecutionName=name,
        )
        arns[name] = r["DurableExecutionArn"]
    wait_until(lambda: all((ledger / f"{n}.holding").exists() for n in names), 60, "every execution holding in step 1")
    return arns


def release_and_wait(ds: Durascope, ledger: Path, arns: dict[str, str]) -> None:
    """Let the held executions go on, and wait until each has ended."""
    (ledger / "release").touch()
    for arn in arns.values():
        ds.wait(arn, 60)


def holder(ledger: Path, name: str) -> int:
    return int((ledger / f"{name}.holding").read_text())


def register(ds: Durascope, tag: str) -> None:
    ds.register_function("ledgered", "th_faults.ledgered", code_dir=HANDLERS, env={TAG_VARIABLE: tag}, timeout=120)
