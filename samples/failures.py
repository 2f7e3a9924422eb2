"""Failure showcase: one handler per way a durable execution can go wrong (or nearly).

* ``retry_then_succeed``: a step fails twice and succeeds on its third attempt (SUCCEEDED;
  two ``StepFailed`` with ``RetryDetails`` before the ``StepSucceeded``);
* ``exhausted_retries``: a step fails on every attempt until the retry strategy gives up
  (FAILED with the step's error, ``DownstreamUnavailable``);
* ``callback_timeout``: nobody answers the callback within ``timeout_seconds`` (FAILED;
  ``CallbackTimedOut`` with ``Callback.Timeout``);
* ``execution_timeout``: waits longer than the function's execution timeout (register it with a
  short one, the catalog uses 3 s): TIMED_OUT;
* ``map_with_failures``: ``context.map`` over items where some fail; the completion config
  tolerates ``tolerated_failures`` of them, so the execution SUCCEEDS and reports the failed ones;
* ``long_wait``: waits an hour (``seconds``) so an operator can stop it (STOPPED).

Failures are decided by the input and the attempt number, never by chance, so every replay and
every test sees the same history.
"""

from __future__ import annotations

import random

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import (
    CompletionConfig,
    Duration,
    MapConfig,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.types import WaitForCallbackContext


class TransientGlitch(RuntimeError):
    """Fails the first attempts of a step, then goes away."""


class DownstreamUnavailable(RuntimeError):
    """A dependency that stays down longer than the retry strategy is willing to wait."""


class ItemRejected(ValueError):
    """One map item is invalid; the others go on."""


def _fixed_retry(max_attempts: int) -> StepConfig:
    # 1 s between attempts, no jitter: short enough for a demo, predictable for tests.
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


def sample_input(rng: random.Random) -> dict:
    """Input for ``map_with_failures`` (the other handlers need none): 6 to 10 items, some failing."""
    n = rng.randint(6, 10)
    failing = sorted(rng.sample(range(n), k=rng.randint(1, 2)))
    return {"items": [f"item-{i}" for i in range(n)], "fail_indices": failing, "tolerated_failures": 2}


@durable_execution
def retry_then_succeed(event: dict, context: DurableContext) -> dict:
    succeed_on = int(event.get("succeed_on_attempt", 3))

    def call(step: StepContext) -> dict:
        if step.attempt < succeed_on:
            raise TransientGlitch(f"glitch on attempt {step.attempt}")
        return {"succeeded_on_attempt": step.attempt}

    return context.step(call, name="flaky-call", config=_fixed_retry(5))


@durable_execution
def exhausted_retries(event: dict, context: DurableContext) -> dict:
    attempts = int(event.get("max_attempts", 3))

    def call(step: StepContext) -> dict:
        raise DownstreamUnavailable(f"inventory service unavailable (attempt {step.attempt} of {attempts})")

    return context.step(call, name="call-inventory", config=_fixed_retry(attempts))


@durable_execution
def callback_timeout(event: dict, context: DurableContext) -> object:
    def submit(callback_id: str, ctx: WaitForCallbackContext) -> dict:
        ctx.logger.info("waiting for an answer nobody will send: callback id %s", callback_id)
        return {"callback_id": callback_id}

    config = WaitForCallbackConfig(timeout=Duration.from_seconds(int(event.get("timeout_seconds", 2))))
    return context.wait_for_callback(submit, name="unanswered-callback", config=config)


@durable_execution
def execution_timeout(event: dict, context: DurableContext) -> str:
    context.step(lambda _: "started", name="begin")
    context.wait(Duration.from_seconds(int(event.get("seconds", 60))), name="longer-than-allowed")
    return "unreachable when the execution timeout is shorter than the wait"


@durable_execution
def map_with_failures(event: dict, context: DurableContext) -> dict:
    failing = set(event.get("fail_indices", []))
    tolerated = int(event.get("tolerated_failures", 2))

    def process(ctx: DurableContext, item: str, index: int, _items: object) -> dict:
        def work(_: StepContext) -> dict:
            if index in failing:
                raise ItemRejected(f"{item} is malformed")
            return {"item": item, "processed": True}

        return ctx.step(work, name=f"process-{item}", config=StepConfig(retry_strategy=RetryPresets.none()))

    config = MapConfig(
        max_concurrency=4,
        completion_config=CompletionConfig(tolerated_failure_count=tolerated),
        item_namer=lambda item, index: f"item-{index}",
    )
    batch = context.map(event.get("items", []), process, name="process-items", config=config)
    if batch.failure_count > tolerated:
        batch.throw_if_error()  # more failures than tolerated: fail with the first item's error
    return {
        "succeeded": batch.success_count,
        "failed": batch.failure_count,
        "completion_reason": batch.completion_reason.value,
        "errors": [e.message if e else None for e in batch.get_errors()],
    }


@durable_execution
def long_wait(event: dict, context: DurableContext) -> str:
    context.wait(Duration.from_seconds(int(event.get("seconds", 3600))), name="long-wait")
    return "woke up without being stopped"
