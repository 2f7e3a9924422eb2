"""Handlers for the pages across executions: a checkout whose path depends on its input
(compare), and a step that keeps failing, quickly at first and then slowly (the waiting
board's "stuck retrying")."""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryDecision


def _never(_error: Exception, _attempt: int) -> RetryDecision:
    return RetryDecision.no_retry()


def _slow_after_three(_error: Exception, attempt: int) -> RetryDecision:
    return RetryDecision.retry(Duration.from_seconds(1 if attempt < 3 else 600))


@durable_execution
def checkout(event, context: DurableContext):
    price = context.step(lambda _: event["amount"] * 2, name="price")
    if event.get("express"):
        context.step(lambda _: "express", name="ship-express")
    else:
        context.step(lambda _: "standard", name="ship")

    def charge(_):
        if event.get("fail"):
            raise RuntimeError(f"card declined for {price}")
        return {"charged": price}

    return context.step(charge, name="charge", config=StepConfig(retry_strategy=_never))


@durable_execution
def stuck(event, context: DurableContext):
    def attempt(_):
        raise ConnectionError("upstream refused")

    return context.step(attempt, name="call-upstream", config=StepConfig(retry_strategy=_slow_after_three))


@durable_execution
def chatty(event, context: DurableContext):
    """Prints around a wait and inside steps: after the wait the handler runs from the start
    again, so "starting" is printed twice, the second time while the SDK replays."""
    print("starting")

    def first(step_ctx):
        print(f"inside first, attempt {step_ctx.attempt}")
        return 1

    context.step(first, name="first")
    context.wait(Duration.from_seconds(1), name="nap")
    print("after the nap")

    def second(step_ctx):
        print(f"inside second, attempt {step_ctx.attempt}")
        if step_ctx.attempt < 2:
            raise ValueError("not yet")
        return 2

    context.step(second, name="second", config=StepConfig(retry_strategy=_retry_once))
    return "done"


def _retry_once(_error: Exception, attempt: int) -> RetryDecision:
    return RetryDecision.retry(Duration.from_seconds(1)) if attempt < 2 else RetryDecision.no_retry()


@durable_execution
def polls(event, context: DurableContext):
    """Checks a condition every 10 minutes: between checks it waits on the board."""
    from aws_durable_execution_sdk_python.waits import WaitForConditionConfig, WaitForConditionDecision

    config = WaitForConditionConfig(
        wait_strategy=lambda state, attempts: WaitForConditionDecision.continue_waiting(Duration.from_seconds(600)),
        initial_state=0)
    return context.wait_for_condition(lambda state, _ctx: state + 1, config=config, name="ready?")
