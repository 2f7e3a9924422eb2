"""Handlers for the ``invoke`` suite (requirements 5-1 .. 5-16) and their targets.

Targets are registered under the names in TARGETS (function name -> "module:attr").
"""

from __future__ import annotations

import json

from aws_durable_execution_sdk_python import DurableContext, InvokeError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, InvokeConfig
from aws_durable_execution_sdk_python.serdes import SerDes

ECHO = "dconf-echo"
ECHO2 = "dconf-echo-2"
FAIL = "dconf-fail"
SIZE = "dconf-size"

TARGETS = {
    ECHO: "dconf_invoke:target_echo",
    ECHO2: "dconf_invoke:target_echo",
    FAIL: "dconf_invoke:target_fail",
    SIZE: "dconf_invoke:target_size",
}

# Near the chained-invoke input limit (1 MiB, docs/protocol.md#checkpoints): ~900 KiB of JSON.
LARGE_PAYLOAD_CHARS = 900 * 1024


# --- targets -------------------------------------------------------------------


@durable_execution
def target_echo(event, context: DurableContext):
    return event


@durable_execution
def target_fail(event, context: DurableContext):
    raise RuntimeError("target function failed on purpose")


@durable_execution
def target_size(event, context: DurableContext):
    return {"receivedChars": len(event["blob"]) if isinstance(event, dict) else None}


# --- handlers ------------------------------------------------------------------


@durable_execution
def h_5_1(event, context: DurableContext):
    return context.invoke(ECHO, event)


@durable_execution
def h_5_2(event, context: DurableContext):
    return context.invoke(ECHO, event["payload"], name=event["name"])


@durable_execution
def h_5_3(event, context: DurableContext):
    return context.invoke(ECHO, event)


@durable_execution
def h_5_4(event, context: DurableContext):
    return context.invoke(ECHO, None)


@durable_execution
def h_5_5(event, context: DurableContext):
    return context.invoke(FAIL, None)


@durable_execution
def h_5_6(event, context: DurableContext):
    try:
        return context.invoke(FAIL, None)
    except InvokeError:
        return "fallback"


@durable_execution
def h_5_7(event, context: DurableContext):
    return context.invoke(SIZE, {"blob": "x" * LARGE_PAYLOAD_CHARS})


@durable_execution
def h_5_8(event, context: DurableContext):
    return context.invoke(ECHO, event["payload"], config=InvokeConfig(tenant_id=event["tenantId"]))


@durable_execution
def h_5_9(event, context: DurableContext):
    result = context.invoke(ECHO, {"ping": "pong"})
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def h_5_10(event, context: DurableContext):
    try:
        outcome = context.invoke(FAIL, None)
    except InvokeError as err:
        outcome = f"caught: {err}"
    context.wait(Duration.from_seconds(1))
    return outcome


@durable_execution
def h_5_11(event, context: DurableContext):
    value = context.step(lambda _: "from-step", name="prepare")
    return context.invoke(ECHO, value)


@durable_execution
def h_5_12(event, context: DurableContext):
    result = context.invoke(ECHO, "from-invoke")
    return context.step(lambda _: f"processed {result}", name="process")


@durable_execution
def h_5_13(event, context: DurableContext):
    return context.run_in_child_context(lambda ctx: ctx.invoke(ECHO, "in-child"), name="invoke-child")


@durable_execution
def h_5_14(event, context: DurableContext):
    first = context.invoke(ECHO, "first")
    second = context.invoke(ECHO2, "second")
    return [first, second]


class UppercasePayloadSerDes(SerDes):
    """JSON-encodes the payload with every string upper-cased."""

    def serialize(self, value, serdes_context) -> str:
        return json.dumps(value).upper()

    def deserialize(self, data: str, serdes_context):
        return json.loads(data)


@durable_execution
def h_5_15(event, context: DurableContext):
    return context.invoke(ECHO, event, config=InvokeConfig(serdes_payload=UppercasePayloadSerDes()))


class UppercaseResultSerDes(SerDes):
    """Reads the raw result text and upper-cases it (no JSON decoding)."""

    def serialize(self, value, serdes_context) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context):
        return data.upper()


@durable_execution
def h_5_16(event, context: DurableContext):
    return context.invoke(ECHO, event, config=InvokeConfig(serdes_result=UppercaseResultSerDes()))
