"""Handlers for the ``child`` suite (requirements 3-1 .. 3-18)."""

from __future__ import annotations

import time

from aws_durable_execution_sdk_python import ChildContextError, DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import ChildConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryPresets
from aws_durable_execution_sdk_python.serdes import SerDes
from dconf_common import arn_of, crash, emit, first_time, fixed_retry

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


@durable_execution
def h_3_1(event, context: DurableContext):
    def child(ctx: DurableContext):
        return ctx.step(lambda _: event, name="echo")

    return context.run_in_child_context(child)


@durable_execution
def h_3_2(event, context: DurableContext):
    def child(ctx: DurableContext):
        return ctx.step(lambda _: event["value"], name="echo")

    return context.run_in_child_context(child, name=event["name"])


@durable_execution
def h_3_3(event, context: DurableContext):
    def child(ctx: DurableContext):
        first = ctx.step(lambda _: event, name="first")
        return ctx.step(lambda _: first, name="second")

    return context.run_in_child_context(child, name="sequential-child")


@durable_execution
def h_3_4(event, context: DurableContext):
    def child(ctx: DurableContext):
        def fail(_):
            raise RuntimeError("inner step failed")

        return ctx.step(fail, name="failing", config=NO_RETRY)

    return context.run_in_child_context(child, name="failing-child")


@durable_execution
def h_3_5(event, context: DurableContext):
    def child(ctx: DurableContext):
        def fail(_):
            raise RuntimeError("inner step failed")

        return ctx.step(fail, name="failing", config=NO_RETRY)

    try:
        context.run_in_child_context(child)
    except ChildContextError:
        pass
    return context.step(lambda _: event, name="recovery")


@durable_execution
def h_3_6(event, context: DurableContext):
    def inner(ctx: DurableContext):
        return ctx.step(lambda _: event, name="inner-step")

    def outer(ctx: DurableContext):
        ctx.step(lambda _: event, name="outer-step")
        return ctx.run_in_child_context(inner, name="inner")

    return context.run_in_child_context(outer, name="outer")


@durable_execution
def h_3_7(event, context: DurableContext):
    def child(ctx: DurableContext):
        def flaky(step_context: StepContext):
            if step_context.attempt == 1:
                raise RuntimeError("first attempt fails")
            return event

        return ctx.step(flaky, name="flaky", config=StepConfig(retry_strategy=fixed_retry(3)))

    return context.run_in_child_context(child, name="retry-child")


@durable_execution
def h_3_8(event, context: DurableContext):
    def child(ctx: DurableContext):
        def always_fail(step_context: StepContext):
            raise RuntimeError(f"attempt {step_context.attempt} failed")

        return ctx.step(always_fail, name="always_fail", config=StepConfig(retry_strategy=fixed_retry(2)))

    return context.run_in_child_context(child, name="exhausted-child")


@durable_execution
def h_3_9(event, context: DurableContext):
    def child(ctx: DurableContext):
        return ctx.step(lambda _: event, name="echo")

    result = context.run_in_child_context(child)
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def h_3_10(event, context: DurableContext):
    def child(ctx: DurableContext):
        value = ctx.step(lambda _: event, name="echo")
        ctx.wait(Duration.from_seconds(1))
        return value

    return context.run_in_child_context(child, name="step-and-wait")


@durable_execution
def h_3_11(event, context: DurableContext):
    arn = arn_of(context)

    def child(ctx: DurableContext):
        # Logged unconditionally ("replay logging enabled"): the body re-runs on
        # replay in ReplayChildren mode, and that must stay observable.
        emit(arn, {"message": f"child body running for: {event}"})
        small = ctx.step(lambda _: event, name="small")
        return small + "x" * (300 * 1024)

    large = context.run_in_child_context(child, name="large-child")
    context.wait(Duration.from_seconds(1))
    return {"length": len(large), "prefix": large[: len(event)]}


@durable_execution
def h_3_12(event, context: DurableContext):
    arn = arn_of(context)

    def child(ctx: DurableContext):
        def crashing(_):
            if first_time(arn, "3-12"):
                # Let the asynchronous START checkpoint reach the backend
                # (the SDK batches for at most 1 s) before the runtime dies.
                time.sleep(2)
                crash()
            return event

        return ctx.step(crashing, name="crashing")

    return context.run_in_child_context(child)


@durable_execution
def h_3_13(event, context: DurableContext):
    def child(ctx: DurableContext):
        ctx.wait(Duration.from_seconds(1))
        return event

    context.run_in_child_context(child, name="waiting-child")
    return context.step(lambda _: event, name="after")


class UppercaseRawSerDes(SerDes):
    """Stores a string upper-cased, not JSON-encoded; reads it back verbatim."""

    def serialize(self, value, serdes_context) -> str:
        return str(value).upper()

    def deserialize(self, data: str, serdes_context):
        return data


@durable_execution
def h_3_14(event, context: DurableContext):
    def child(ctx: DurableContext):
        return ctx.step(lambda _: event, name="echo")

    return context.run_in_child_context(child, name="serdes-child", config=ChildConfig(serdes=UppercaseRawSerDes()))


@durable_execution
def h_3_15(event, context: DurableContext):
    def child(ctx: DurableContext):
        raise RuntimeError("thrown directly in child body")

    return context.run_in_child_context(child, name="throwing-child")


@durable_execution
def h_3_16(event, context: DurableContext):
    return context.run_in_child_context(lambda ctx: None, name="null-child")


@durable_execution
def h_3_17(event, context: DurableContext):
    arn = arn_of(context)

    def child(ctx: DurableContext):
        emit(arn, {"message": f"child logging only: {event}"})
        return event

    result = context.run_in_child_context(child, name="logging-child")
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def h_3_18(event, context: DurableContext):
    def child(ctx: DurableContext):
        value = ctx.step(lambda _: event, name="inner-step")
        ctx.wait(Duration.from_seconds(1))
        return value

    result = context.run_in_child_context(child, name="mixed-child")
    context.step(lambda _: event, name="outer-step")
    context.wait(Duration.from_seconds(1))
    return result
