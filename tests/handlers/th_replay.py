"""A workflow and changed versions of it, for the replay check.

Every step body appends its name to the file ``event["marks"]``, so a test can tell
whether a replay ran any step body (it must not).
"""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig


def _mark(event: dict, name: str, value: object) -> object:
    with open(event["marks"], "a", encoding="utf-8") as f:
        f.write(name + "\n")
    return value


def _stock(event: dict, inner: str = "reserve"):
    return lambda c: c.step(lambda _: _mark(event, inner, 2), name=inner)


@durable_execution
def order_flow(event, context: DurableContext):
    """The recorded version: a step, a child context with a step, a wait, a step."""
    first = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    second = context.run_in_child_context(_stock(event), name="stock")
    context.wait(Duration.from_seconds(1), name="cool-off")
    return context.step(lambda _: _mark(event, "charge", first + second), name="charge")


@durable_execution
def order_flow_renamed(event, context: DurableContext):
    """The last step has another name."""
    first = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    second = context.run_in_child_context(_stock(event), name="stock")
    context.wait(Duration.from_seconds(1), name="cool-off")
    return context.step(lambda _: _mark(event, "bill", first + second), name="bill")


@durable_execution
def order_flow_retyped(event, context: DurableContext):
    """The wait became a step of the same name."""
    first = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    second = context.run_in_child_context(_stock(event), name="stock")
    context.step(lambda _: _mark(event, "cool-off", None), name="cool-off")
    return context.step(lambda _: _mark(event, "charge", first + second), name="charge")


@durable_execution
def order_flow_shorter(event, context: DurableContext):
    """The wait and the last step are gone."""
    first = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    return first + context.run_in_child_context(_stock(event), name="stock")


@durable_execution
def order_flow_longer(event, context: DurableContext):
    """A step was added at the end."""
    first = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    second = context.run_in_child_context(_stock(event), name="stock")
    context.wait(Duration.from_seconds(1), name="cool-off")
    total = context.step(lambda _: _mark(event, "charge", first + second), name="charge")
    context.step(lambda _: _mark(event, "notify", None), name="notify")
    return total


@durable_execution
def order_flow_fails(event, context: DurableContext):
    """Same operations, but the handler now fails after them."""
    order_total = context.step(lambda _: _mark(event, "validate", 1), name="validate")
    context.run_in_child_context(_stock(event), name="stock")
    context.wait(Duration.from_seconds(1), name="cool-off")
    context.step(lambda _: _mark(event, "charge", order_total), name="charge")
    raise ValueError("the new code rejects every order")


def not_durable(event, context):
    """A plain Lambda handler: not something the replay check can run."""
    return {"ok": True}


def _approval_cfg() -> WaitForCallbackConfig:
    return WaitForCallbackConfig(timeout=Duration.from_seconds(3600))


@durable_execution
def held(event, context: DurableContext):
    """In flight: waits for approval inside a child context (the context stays open)."""
    context.step(lambda _: _mark(event, "validate", 1), name="validate")

    def review(c: DurableContext):
        c.step(lambda _: _mark(event, "prepare", 1), name="prepare")
        return c.wait_for_callback(lambda cid, _: None, name="approval", config=_approval_cfg())

    return context.run_in_child_context(review, name="review")


@durable_execution
def held_renamed_inside(event, context: DurableContext):
    """The step inside the open context has another name."""
    context.step(lambda _: _mark(event, "validate", 1), name="validate")

    def review(c: DurableContext):
        c.step(lambda _: _mark(event, "collect", 1), name="collect")
        return c.wait_for_callback(lambda cid, _: None, name="approval", config=_approval_cfg())

    return context.run_in_child_context(review, name="review")


@durable_execution
def held_step_before_callback(event, context: DurableContext):
    """A new step comes before the callback the history waits on: the step is new work
    at a position the history already holds the callback's context at."""
    context.step(lambda _: _mark(event, "validate", 1), name="validate")

    def review(c: DurableContext):
        c.step(lambda _: _mark(event, "prepare", 1), name="prepare")
        c.step(lambda _: _mark(event, "score", 1), name="score")
        return c.wait_for_callback(lambda cid, _: None, name="approval", config=_approval_cfg())

    return context.run_in_child_context(review, name="review")
