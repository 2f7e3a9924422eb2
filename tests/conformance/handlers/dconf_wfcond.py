"""Handlers for the ``wait_for_condition`` suite (requirements 6-1 .. 6-13)."""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, WaitForConditionError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy
from aws_durable_execution_sdk_python.exceptions import DurableOperationError
from aws_durable_execution_sdk_python.serdes import SerDes
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitStrategyConfig,
    create_wait_strategy,
)


def fixed_strategy(should_continue, delay: int = 1, max_attempts: int = 60):
    return create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=should_continue,
            max_attempts=max_attempts,
            initial_delay=Duration.from_seconds(delay),
            max_delay=Duration.from_seconds(delay),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )


def increment(state, check_context):
    return state + 1


def counter_until(threshold: int, initial: int = 0, delay: int = 1) -> WaitForConditionConfig:
    return WaitForConditionConfig(
        wait_strategy=fixed_strategy(lambda s: s < threshold, delay=delay), initial_state=initial
    )


@durable_execution
def h_6_1(event, context: DurableContext):
    return context.wait_for_condition(increment, counter_until(int(event)))


@durable_execution
def h_6_2(event, context: DurableContext):
    config = WaitForConditionConfig(wait_strategy=fixed_strategy(lambda s: s < 5), initial_state=5)
    return context.wait_for_condition(lambda state, _: state, config)


@durable_execution
def h_6_3(event, context: DurableContext):
    return context.wait_for_condition(increment, counter_until(int(event)), name="poll-status")


@durable_execution
def h_6_4(event, context: DurableContext):
    return context.wait_for_condition(increment, counter_until(int(event), initial=5))


@durable_execution
def h_6_5(event, context: DurableContext):
    return context.wait_for_condition(increment, counter_until(int(event), delay=2))


@durable_execution
def h_6_6(event, context: DurableContext):
    config = WaitForConditionConfig(
        wait_strategy=fixed_strategy(lambda s: True, max_attempts=3), initial_state=int(event or 0)
    )
    return context.wait_for_condition(increment, config)


def _raising_check(state, check_context):
    raise RuntimeError("check function failed")


@durable_execution
def h_6_7(event, context: DurableContext):
    config = WaitForConditionConfig(wait_strategy=fixed_strategy(lambda s: True), initial_state=0)
    return context.wait_for_condition(_raising_check, config)


@durable_execution
def h_6_8(event, context: DurableContext):
    config = WaitForConditionConfig(wait_strategy=fixed_strategy(lambda s: True), initial_state=0)
    try:
        return context.wait_for_condition(_raising_check, config)
    except (WaitForConditionError, DurableOperationError):
        return "recovered"


@durable_execution
def h_6_9(event, context: DurableContext):
    def check(state, _):
        attempts = state["attempts"] + 1
        return {"status": "DONE" if attempts >= 2 else "PENDING", "attempts": attempts}

    config = WaitForConditionConfig(
        wait_strategy=fixed_strategy(lambda s: s["status"] == "PENDING"),
        initial_state={"status": "PENDING", "attempts": 0},
    )
    return context.wait_for_condition(check, config)


@durable_execution
def h_6_10(event, context: DurableContext):
    config = WaitForConditionConfig(wait_strategy=fixed_strategy(lambda s: False), initial_state=0)
    return context.wait_for_condition(lambda state, _: None, config)


class EncodedStringSerDes(SerDes):
    """Stores a string state as ``enc:<reversed text>``."""

    def serialize(self, value, serdes_context) -> str:
        return "enc:" + str(value)[::-1]

    def deserialize(self, data: str, serdes_context):
        if not data.startswith("enc:"):
            msg = f"not an encoded state: {data!r}"
            raise ValueError(msg)
        return data[4:][::-1]


@durable_execution
def h_6_11(event, context: DurableContext):
    config = WaitForConditionConfig(
        wait_strategy=fixed_strategy(lambda s: len(s) < 2), initial_state="", serdes=EncodedStringSerDes()
    )
    return context.wait_for_condition(lambda state, _: state + "x", config)


@durable_execution
def h_6_12(event, context: DurableContext):
    final = context.wait_for_condition(increment, counter_until(int(event)))
    return context.step(lambda _: final * 10, name="multiply")


@durable_execution
def h_6_13(event, context: DurableContext):
    first = context.wait_for_condition(increment, counter_until(2))
    return context.wait_for_condition(increment, counter_until(4, initial=first))
