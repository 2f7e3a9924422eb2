"""Handlers for the worker-process tests (official SDK only)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from aws_durable_execution_sdk_python import DurableContext, durable_execution


@durable_execution
def whoami(event, context: DurableContext):
    print(f"hello from pid {os.getpid()}")
    return context.step(
        lambda _: {
            "pid": os.getpid(),
            "mode": os.environ.get("MODE"),
            "fn": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        },
        name="whoami",
    )


def _first_time(marker: str) -> bool:
    path = Path(marker)
    if path.exists():
        return False
    path.touch()
    return True


@durable_execution
def dies_once(event, context: DurableContext):
    """The runtime process dies in the middle of a step, the first time only."""
    context.step(lambda _: "before", name="before")

    def crash(_):
        if _first_time(event["marker"]):
            if event.get("how") == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        return "survived"

    return context.step(crash, name="crash")


@durable_execution
def hangs_once(event, context: DurableContext):
    def slow(_):
        if _first_time(event["marker"]):
            time.sleep(30)
        return "fast this time"

    return context.step(slow, name="slow")


@durable_execution
def chatty(event, context: DurableContext):
    """Writes many lines at once just before it returns, the last without a newline."""

    def talk(_):
        sys.stdout.write("".join(f"line {i:04d}\n" for i in range(int(event["lines"]))) + "the end")
        return "said"

    return context.step(talk, name="talk")


@durable_execution
def whose_key(event, context: DurableContext):
    """What the SDK in this runtime signs its checkpoints with (the step checkpoints it)."""
    return context.step(
        lambda _: {
            "key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret_is_admins": os.environ.get("AWS_SECRET_ACCESS_KEY") == event.get("admin"),
        },
        name="whose-key",
    )
