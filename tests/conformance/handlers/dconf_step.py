"""Handlers for the ``step`` suite (requirements 1-1 .. 1-20)."""

from __future__ import annotations

import json

from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    StepError,
    durable_execution,
    durable_step,
)
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy, StepConfig, StepSemantics
from aws_durable_execution_sdk_python.retries import (
    RetryDecision,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.serdes import SerDes
from dconf_common import crash, fixed_retry, sink_logger

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


@durable_step
def greet(step_context: StepContext, name: str) -> str:
    return f"Hello, {name}!"


@durable_execution
def h_1_1(event, context: DurableContext):
    return context.step(greet(event))


@durable_execution
def h_1_2(event, context: DurableContext):
    return context.step(lambda _: f"Hello, {event}!", name="custom_step_name")


@durable_execution
def h_1_3(event, context: DurableContext):
    result1 = context.step(lambda _: "first", name="step_one")
    return context.step(lambda _: f"{result1}_second", name="step_two")


@durable_execution
def h_1_4(event, context: DurableContext):
    def build_response(_):
        return {"user": {"name": event["name"], "tags": list(event["tags"])}, "count": len(event["tags"])}

    return context.step(build_response)


@durable_execution
def h_1_5(event, context: DurableContext):
    return context.step(lambda _: None, name="do_nothing")


class UppercaseSerDes(SerDes):
    """Serializes every string value upper-cased (JSON)."""

    def serialize(self, value, serdes_context) -> str:
        def up(v):
            if isinstance(v, str):
                return v.upper()
            if isinstance(v, list):
                return [up(x) for x in v]
            if isinstance(v, dict):
                return {k: up(x) for k, x in v.items()}
            return v

        return json.dumps(up(value))

    def deserialize(self, data: str, serdes_context):
        return json.loads(data)


@durable_execution
def h_1_6(event, context: DurableContext):
    return context.step(lambda _: event, name="return_input", config=StepConfig(serdes=UppercaseSerDes()))


@durable_execution
def h_1_7(event, context: DurableContext):
    context.set_logger(sink_logger())

    def greet_logged(step_context: StepContext):
        step_context.logger.info(f"Greeting step started for: {event}")
        result = f"Hello, {event}!"
        step_context.logger.info(f"Greeting step completed with: {result}")
        return result

    return context.step(greet_logged, name="greet")


@durable_execution
def h_1_8(event, context: DurableContext):
    result = context.step(lambda _: "computed", name="compute")
    context.wait(Duration.from_seconds(2))
    return result


@durable_execution
def h_1_9(event, context: DurableContext):
    def func(step_context: StepContext):
        step_context.logger.info("step executed")
        return "cached_value"

    result = context.step(func, name="func")
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def h_1_10(event, context: DurableContext):
    def func(step_context: StepContext):
        step_context.logger.info("step executed")
        raise ValueError("permanent failure")

    try:
        context.step(func, name="func", config=NO_RETRY)
    except StepError as err:
        caught = str(err)
    else:
        caught = None
    context.wait(Duration.from_seconds(1))
    return {"caught": caught}


@durable_execution
def h_1_11(event, context: DurableContext):
    def unreliable(step_context: StepContext):
        if step_context.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "Operation succeeded"

    return context.step(unreliable, name="unreliable_func", config=StepConfig(retry_strategy=fixed_retry(3)))


@durable_execution
def h_1_12(event, context: DurableContext):
    def always_fail(step_context: StepContext):
        raise RuntimeError(f"attempt {step_context.attempt} failed")

    return context.step(always_fail, name="always_fail", config=StepConfig(retry_strategy=fixed_retry(4)))


@durable_execution
def h_1_13(event, context: DurableContext):
    def unreliable(step_context: StepContext):
        if step_context.attempt < 3:
            raise RuntimeError(f"attempt {step_context.attempt} failed")
        return "succeeded on third attempt"

    return context.step(unreliable, name="unreliable_func")


@durable_execution
def h_1_14(event, context: DurableContext):
    strategy = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=5,
            initial_delay=Duration.from_seconds(2),
            max_delay=Duration.from_minutes(5),
            backoff_rate=3,
            jitter_strategy=JitterStrategy.NONE,
        )
    )

    def func(step_context: StepContext):
        if step_context.attempt < 3:
            raise RuntimeError(f"attempt {step_context.attempt} failed")
        return "succeeded on third attempt"

    return context.step(func, name="func", config=StepConfig(retry_strategy=strategy))


class TransientError(Exception):
    """Error the retry strategies below look for."""


def retry_on_transient(error: Exception, attempts_made: int) -> RetryDecision:
    if isinstance(error, TransientError) and attempts_made < 3:
        return RetryDecision.retry(Duration.from_seconds(1))
    return RetryDecision.no_retry()


def no_retry_on_transient_error(error: Exception, attempts_made: int) -> RetryDecision:
    if isinstance(error, TransientError):
        return RetryDecision.no_retry()
    return RetryDecision.retry(Duration.from_seconds(1))


@durable_execution
def h_1_15(event, context: DurableContext):
    def func(step_context: StepContext):
        if step_context.attempt == 1:
            raise TransientError("transient failure")
        return "recovered"

    return context.step(func, name="func", config=StepConfig(retry_strategy=retry_on_transient))


@durable_execution
def h_1_16(event, context: DurableContext):
    def func(step_context: StepContext):
        raise TransientError("transient failure")

    return context.step(func, name="func", config=StepConfig(retry_strategy=no_retry_on_transient_error))


@durable_execution
def h_1_17(event, context: DurableContext):
    context.set_logger(sink_logger())

    def flaky(step_context: StepContext):
        step_context.logger.info(f"at_most_once step running for: {event}")
        crash()
        return "unreachable"

    return context.step(
        flaky,
        name="at_most_once_flaky_step",
        config=StepConfig(retry_strategy=RetryPresets.none(), step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY),
    )


@durable_execution
def h_1_18(event, context: DurableContext):
    context.set_logger(sink_logger())

    def flaky(step_context: StepContext):
        step_context.logger.info(f"at_most_once step attempt {step_context.attempt} for: {event}")
        if step_context.attempt == 1:
            crash()
        return "succeeded on second attempt"

    return context.step(
        flaky,
        name="at_most_once_flaky_step",
        config=StepConfig(retry_strategy=fixed_retry(3), step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY),
    )


@durable_execution
def h_1_19(event, context: DurableContext):
    def failing(_):
        raise RuntimeError("step always fails")

    return context.step(failing, name="failing_func", config=NO_RETRY)


@durable_execution
def h_1_20(event, context: DurableContext):
    def failing(_):
        raise RuntimeError("step fails")

    try:
        value = context.step(failing, name="failing_func", config=NO_RETRY)
    except StepError:
        value = "fallback_result"
    return context.step(lambda _: value, name="use_value")
