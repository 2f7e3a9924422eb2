"""Handlers for the ``callback`` suite (requirements 4-1 .. 4-19)."""

from __future__ import annotations

import datetime
import json

from aws_durable_execution_sdk_python import CallbackError, DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration
from aws_durable_execution_sdk_python.serdes import SerDes


@durable_execution
def h_4_1(event, context: DurableContext):
    callback = context.create_callback(name=event)
    return callback.result()


@durable_execution
def h_4_2(event, context: DurableContext):
    callback = context.create_callback(name="approval")
    return callback.result()


@durable_execution
def h_4_3(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(5)))
    return callback.result()


@durable_execution
def h_4_4(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(heartbeat_timeout=Duration.from_seconds(5)))
    return callback.result()


@durable_execution
def h_4_5(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(heartbeat_timeout=Duration.from_seconds(10)))
    return callback.result()


@durable_execution
def h_4_6(event, context: DurableContext):
    callback = context.create_callback(name=event)
    return callback.result()


@durable_execution
def h_4_7(event, context: DurableContext):
    callback = context.create_callback(name=event)
    context.step(lambda _: "side work", name="work")
    return callback.result()


@durable_execution
def h_4_8(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(5)))
    context.step(lambda _: "side work", name="work")
    return callback.result()


@durable_execution
def h_4_9(event, context: DurableContext):
    callback = context.create_callback(name=event)
    context.wait(Duration.from_seconds(5))
    return callback.result()


@durable_execution
def h_4_10(event, context: DurableContext):
    callback = context.create_callback(name=event)
    context.wait(Duration.from_seconds(5))
    return callback.result()


@durable_execution
def h_4_11(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(3)))
    context.wait(Duration.from_seconds(6))
    return callback.result()


@durable_execution
def h_4_12(event, context: DurableContext):
    callback = context.create_callback(name=event)
    result = callback.result()
    context.wait(Duration.from_seconds(2))
    return result


@durable_execution
def h_4_13(event, context: DurableContext):
    callback = context.create_callback(name=event)
    try:
        message = callback.result()
    except CallbackError as err:
        message = f"callback failed: {err}"
    context.wait(Duration.from_seconds(2))
    return message


@durable_execution
def h_4_14(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(3)))
    try:
        message = callback.result()
    except CallbackError as err:
        message = f"callback timed out: {err}"
    context.wait(Duration.from_seconds(2))
    return message


class ApprovalSerDes(SerDes):
    """Parses the JSON payload and turns its ISO timestamp into epoch seconds."""

    def serialize(self, value, serdes_context) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context):
        raw = json.loads(data)
        stamp = datetime.datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00"))
        return {"id": raw["id"], "message": raw["message"], "timestamp": int(stamp.timestamp())}


@durable_execution
def h_4_15(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(serdes=ApprovalSerDes()))
    return {"received": callback.result()}


class NumberSerDes(SerDes):
    def serialize(self, value, serdes_context) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context):
        return int(json.loads(data))


@durable_execution
def h_4_16(event, context: DurableContext):
    callback = context.create_callback(name=event, config=CallbackConfig(serdes=NumberSerDes()))
    count = callback.result()
    return {"count": count, "doubled": count * 2}


@durable_execution
def h_4_17(event, context: DurableContext):
    a = context.create_callback(name=event[0]).result()
    b = context.create_callback(name=event[1]).result()
    return [a, b]


@durable_execution
def h_4_18(event, context: DurableContext):
    cb_a = context.create_callback(name=event[0])
    cb_b = context.create_callback(name=event[1])
    a = cb_a.result()
    b = cb_b.result()
    return [a, b]


@durable_execution
def h_4_19(event, context: DurableContext):
    cb_a = context.create_callback(name=event[0])
    cb_b = context.create_callback(name=event[1])
    b = cb_b.result()
    a = cb_a.result()
    return [a, b]
