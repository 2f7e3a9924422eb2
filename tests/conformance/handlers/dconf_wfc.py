"""Handlers for the ``wait_for_callback`` suite (requirements 7-1 .. 7-15)."""

from __future__ import annotations

import json

from aws_durable_execution_sdk_python import CallbackError, DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig
from aws_durable_execution_sdk_python.serdes import SerDes
from dconf_common import fixed_retry


def submitter(callback_id: str, context) -> None:
    """Hands the id to the external system (the test driver reads it from history)."""
    return None


@durable_execution
def h_7_1(event, context: DurableContext):
    return context.wait_for_callback(submitter, name=event)


@durable_execution
def h_7_2(event, context: DurableContext):
    return context.wait_for_callback(submitter, name="approval")


@durable_execution
def h_7_3(event, context: DurableContext):
    return context.wait_for_callback(lambda callback_id, ctx: None)


@durable_execution
def h_7_4(event, context: DurableContext):
    return context.wait_for_callback(submitter, name=event)


@durable_execution
def h_7_5(event, context: DurableContext):
    return context.wait_for_callback(
        submitter, name=event, config=WaitForCallbackConfig(timeout=Duration.from_seconds(3))
    )


@durable_execution
def h_7_6(event, context: DurableContext):
    try:
        return context.wait_for_callback(submitter, name=event)
    except CallbackError:
        return "recovered"


@durable_execution
def h_7_7(event, context: DurableContext):
    def failing_submitter(callback_id: str, ctx) -> None:
        raise RuntimeError("submitter failed")

    return context.wait_for_callback(
        failing_submitter, name=event, config=WaitForCallbackConfig(retry_strategy=fixed_retry(2))
    )


@durable_execution
def h_7_8(event, context: DurableContext):
    return context.run_in_child_context(lambda ctx: ctx.wait_for_callback(submitter, name=event), name="wrapper")


@durable_execution
def h_7_9(event, context: DurableContext):
    context.wait_for_callback(submitter, name="first")
    return context.wait_for_callback(submitter, name="second")


@durable_execution
def h_7_10(event, context: DurableContext):
    context.wait(Duration.from_seconds(1))
    context.step(lambda _: {"fixed": "data"}, name="prepare")
    return context.wait_for_callback(submitter, name=event)


class JsonObjectSerDes(SerDes):
    def serialize(self, value, serdes_context) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context):
        return json.loads(data)


@durable_execution
def h_7_11(event, context: DurableContext):
    result = context.wait_for_callback(submitter, name=event, config=WaitForCallbackConfig(serdes=JsonObjectSerDes()))
    return result["status"]


@durable_execution
def h_7_12(event, context: DurableContext):
    return context.wait_for_callback(
        submitter, name=event, config=WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(5))
    )


@durable_execution
def h_7_13(event, context: DurableContext):
    return context.wait_for_callback(
        submitter, name=event, config=WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(10))
    )


@durable_execution
def h_7_14(event, context: DurableContext):
    try:
        return context.wait_for_callback(
            submitter, name=event, config=WaitForCallbackConfig(timeout=Duration.from_seconds(3))
        )
    except CallbackError:
        return "timed-out-handled"


@durable_execution
def h_7_15(event, context: DurableContext):
    return context.wait_for_callback(submitter, name=event)
