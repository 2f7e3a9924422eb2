"""Handlers for the fault tests (tests/reliability), official SDK only.

``ledgered`` runs ``steps`` steps; each appends a line to a ledger file of its own
(``<ledger>/<name>.step-<i>``) when its body completes, so a test can count how often
every step ran. Step ``hold`` (if given) first writes ``<name>.holding`` with the pid of
the process running it, then waits until the file ``<ledger>/release`` exists: the test
knows the invocation is mid-step and decides when it may go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

RELEASE_WAIT_SECONDS = 120


def _ledger(event: dict, i: int) -> Path:
    return Path(event["ledger"]) / f"{event['name']}.step-{i}"


def _hold(event: dict) -> None:
    ledger = Path(event["ledger"])
    (ledger / f"{event['name']}.holding").write_text(str(os.getpid()))
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while not (ledger / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@durable_execution
def ledgered(event, context: DurableContext):
    total = 0
    for i in range(int(event.get("steps", 3))):

        def body(_, i=i):
            if i == event.get("hold"):
                _hold(event)
            with _ledger(event, i).open("a") as f:
                f.write(f"{os.getpid()}\n")
            return i

        total += context.step(body, name=f"step-{i}")
        if event.get("wait_after") == i:
            context.wait(Duration.from_seconds(int(event.get("wait_seconds", 1))), name="pause")
    return total


def oversized(event, context):
    """Not a durable handler: answers more than Lambda's 6 MB response limit."""
    return {"Status": "SUCCEEDED", "Result": "x" * 6_300_000}


@durable_execution
def environment(event, context: DurableContext):
    """The names of every environment variable the runtime sees."""
    return context.step(lambda _: sorted(os.environ), name="names")


@durable_execution
def loud(event, context: DurableContext):
    """Prints far more than the per-invocation output cap, in one step."""

    def shout(_):
        line = "y" * 1000
        for _ in range(int(event.get("lines", 3000))):
            print(line)
        return "shouted"

    return context.step(shout, name="shout")


@durable_execution
def progress_then_crash(event, context: DurableContext):
    """Runs ``steps`` steps; the first time each step's body runs, its runtime dies
    (``os._exit``) instead. So every invocation after the first has checkpointed a new
    step before it crashes: each crash made progress. With ``always``, step 0 crashes
    every time: no crash makes progress."""
    ledger = Path(event["ledger"])
    for i in range(int(event.get("steps", 4))):

        def body(_, i=i):
            marker = ledger / f"{event['name']}.crashed-{i}"
            if (event.get("always") and i == 0) or not marker.exists():
                marker.touch()
                os._exit(3)
            return i

        context.step(body, name=f"step-{i}")
    return "done"
