"""Handlers for the engine tests, written with the official SDK only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import JitterStrategy, RetryStrategyConfig, create_retry_strategy

log = logging.getLogger("th_basic")
ATTEMPTS: dict[str, int] = {}


def _retry(max_attempts: int) -> StepConfig:
    return StepConfig(
        retry_strategy=create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=max_attempts,
                initial_delay=Duration.from_seconds(1),
                backoff_rate=1,
                jitter_strategy=JitterStrategy.NONE,
            )
        )
    )


@durable_execution
def add_one(event, context: DurableContext):
    return context.step(lambda _: event.get("a", 0) + 1, name="add")


@durable_execution
def flaky(event, context: DurableContext):
    key = event["key"]

    def attempt(_):
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        if ATTEMPTS[key] < 3:
            raise ValueError(f"boom {ATTEMPTS[key]}")
        return {"ok": ATTEMPTS[key]}

    return context.step(attempt, name="flaky", config=_retry(5))


@durable_execution
def always_fails(event, context: DurableContext):
    def attempt(_):
        raise RuntimeError("never works")

    return context.step(attempt, name="doomed", config=_retry(2))


@durable_execution
def waits(event, context: DurableContext):
    context.wait(Duration.from_seconds(event.get("seconds", 1)), name="pause")
    return "woke"


@durable_execution
def approval(event, context: DurableContext):
    cfg = WaitForCallbackConfig(
        timeout=Duration.from_seconds(event.get("timeout", 300)),
        heartbeat_timeout=Duration.from_seconds(event.get("heartbeat", 0)),
    )
    return context.wait_for_callback(lambda cid, _: None, name="approval", config=cfg)


@durable_execution
def calls_child(event, context: DurableContext):
    return context.invoke(event.get("target", "add-one"), {"a": 41}, name="child")


@durable_execution
def logs_things(event, context: DurableContext):
    print("printed line")
    log.info("plain logging line")
    context.logger.info("context logger line")

    def step(step_ctx):
        step_ctx.logger.warning("step logger line <b>markup</b>")
        return 1

    context.step(step, name="logged-step")
    return "ok"


@durable_execution
def many_steps(event, context: DurableContext):
    """N sequential steps; each appends its index to a file (its side effect)."""
    path = Path(event["path"])
    n = event["n"]

    def make(i: int):
        def step(_):
            with path.open("a") as f:
                f.write(f"{i}\n")
                f.flush()
                os.fsync(f.fileno())
            return i

        return step

    total = 0
    for i in range(n):
        total += context.step(make(i), name=f"step-{i}")
    return total


@durable_execution
def gated(event, context: DurableContext):
    """A step that blocks until a file exists, then another step."""
    import time as _time

    gate = Path(event["gate"])

    def wait_for_gate(_):
        deadline = _time.monotonic() + 30
        while not gate.exists() and _time.monotonic() < deadline:
            _time.sleep(0.01)
        return "opened"

    first = context.step(wait_for_gate, name="gate")
    second = context.step(lambda _: "after", name="after-gate")
    return [first, second]


@durable_execution
def step_wait_step(event, context: DurableContext):
    """Two steps around a one-second wait: an execution that spans invocations."""
    first = context.step(lambda _: event.get("n", 0), name="first")
    context.wait(Duration.from_seconds(1), name="gap")
    return context.step(lambda _: first + 1, name="second")
