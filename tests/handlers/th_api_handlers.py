"""Handlers for the REST API tests, written with the official SDK only."""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

NO_RETRY = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)))


@durable_execution
def fails_fast(event, context: DurableContext):
    def boom(_):
        raise ValueError(event.get("message", "fails fast"))

    return context.step(boom, name="boom", config=NO_RETRY)


@durable_execution
def steps_and_child(event, context: DurableContext):
    """Several checkpoints in one invocation: steps and a child context."""
    first = context.step(lambda _: event["n"] * 2, name="double")

    def child(ctx: DurableContext):
        return ctx.step(lambda _: first + 1, name="inc")

    second = context.run_in_child_context(child, name="child")
    third = context.step(lambda _: second * 10, name="times-ten")
    return {"first": first, "second": second, "third": third}


@durable_execution
def steps_then_callback(event, context: DurableContext):
    """Two invocations: a step, then a callback whose result ends the execution."""
    base = context.step(lambda _: event.get("base", "x"), name="base")
    cfg = WaitForCallbackConfig(timeout=Duration.from_seconds(300))
    answer = context.wait_for_callback(lambda cid, _: None, name="ask", config=cfg)
    return f"{base}:{answer}"


@durable_execution
def sleeps(event, context: DurableContext):
    context.wait(Duration.from_seconds(event.get("seconds", 600)), name="long-wait")
    return "woke"


@durable_execution
def mixed(event, context: DurableContext):
    """Ends by mode: "ok" succeeds, "fail" fails, "sleep" waits (stays RUNNING)."""
    mode = event.get("mode", "ok")
    if mode == "sleep":
        context.wait(Duration.from_seconds(600), name="long-wait")
    if mode == "fail":

        def boom(_):
            raise ValueError("mixed failure")

        context.step(boom, name="boom", config=NO_RETRY)
    return context.step(lambda _: mode, name="mode")
