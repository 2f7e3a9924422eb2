"""A pipeline whose runs differ by input, for per-function statistics and cost."""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import (
    Duration,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

RETRY = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(
    max_attempts=2, initial_delay=Duration.from_seconds(1), backoff_rate=1, jitter_strategy=JitterStrategy.NONE)))


@durable_execution
def pipeline(event, context: DurableContext):
    """``fetch``; ``parse`` (fails once with ``retry``, every time with ``fail``: two
    attempts); with ``callback``, a wait for approval."""
    context.step(lambda _: 1, name="fetch")

    def parse(step) -> int:
        if event.get("fail") or (event.get("retry") and step.attempt < 2):
            raise ValueError(f"parse attempt {step.attempt}")
        return 2

    context.step(parse, name="parse", config=RETRY)
    if event.get("callback"):
        context.wait_for_callback(lambda cid, _: None, name="approval",
                                  config=WaitForCallbackConfig(timeout=Duration.from_seconds(600)))
    return "ok"
