"""Handlers for the ``map`` suite (requirements 9-1 .. 9-20)."""

from __future__ import annotations

from aws_durable_execution_sdk_python import BatchResult, DurableContext, durable_execution
from aws_durable_execution_sdk_python.concurrency.models import BatchItem, CompletionReason
from aws_durable_execution_sdk_python.config import (
    BatchItemStatus,
    CompletionConfig,
    Duration,
    MapConfig,
    NestingType,
)
from aws_durable_execution_sdk_python.serdes import JsonSerDes, SerDes


def projection(result) -> dict:
    return {
        "completionReason": result.completion_reason.value,
        "status": result.status.value,
        "successCount": result.success_count,
        "failureCount": result.failure_count,
        "totalCount": result.total_count,
    }


def _short(p: dict) -> dict:
    return {k: p[k] for k in ("completionReason", "successCount", "failureCount", "totalCount")}


def sequential(**completion) -> MapConfig:
    return MapConfig(max_concurrency=1, completion_config=CompletionConfig(**completion))


def ok_or_fail(ctx, item, index, items):
    if item == "fail":
        raise RuntimeError(f"item {index} failed")
    return item


@durable_execution
def h_9_1(event, context: DurableContext):
    def greet(ctx: DurableContext, item, index, items):
        return ctx.step(lambda _: f"Hello, {item}!", name=f"greet-{index}")

    return context.map(event, greet, name="map", config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def h_9_2(event, context: DurableContext):
    return context.map(event, lambda ctx, item, i, items: item * 2, config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def h_9_3(event, context: DurableContext):
    result = context.map(
        event, lambda ctx, item, i, items: item + i, name="indexed", config=MapConfig(max_concurrency=1)
    )
    return result.get_results()


@durable_execution
def h_9_4(event, context: DurableContext):
    return context.map(list(event or []), lambda ctx, item, i, items: item, name="empty").get_results()


@durable_execution
def h_9_5(event, context: DurableContext):
    result = context.map(
        ["ok", "fail", "never"], ok_or_fail, name="failfast", config=sequential(tolerated_failure_count=0)
    )
    return projection(result)


@durable_execution
def h_9_6(event, context: DurableContext):
    result = context.map(["fail", "never"], ok_or_fail, name="throwing", config=sequential(tolerated_failure_count=0))
    result.throw_if_error()
    return result.get_results()


@durable_execution
def h_9_7(event, context: DurableContext):
    result = context.map(["a", "b", "c", "d"], ok_or_fail, name="min-successful", config=sequential(min_successful=2))
    p = projection(result)
    return {"completionReason": p["completionReason"], "successCount": p["successCount"], "totalCount": p["totalCount"]}


@durable_execution
def h_9_8(event, context: DurableContext):
    result = context.map(["a", "fail", "c"], ok_or_fail, name="tolerated", config=sequential(tolerated_failure_count=1))
    return projection(result)


@durable_execution
def h_9_9(event, context: DurableContext):
    result = context.map(
        ["fail", "fail", "c"], ok_or_fail, name="tolerated-exceeded", config=sequential(tolerated_failure_count=1)
    )
    return _short(projection(result))


@durable_execution
def h_9_10(event, context: DurableContext):
    result = context.map(
        ["fail", "fail", "c", "d"], ok_or_fail, name="tolerated-pct", config=sequential(tolerated_failure_percentage=25)
    )
    return _short(projection(result))


@durable_execution
def h_9_11(event, context: DurableContext):
    result = context.map(["r0", "r1", "r2"], ok_or_fail, name="concurrent", config=MapConfig(max_concurrency=2))
    return result.get_results()


@durable_execution
def h_9_12(event, context: DurableContext):
    def item_step(ctx: DurableContext, item, index, items):
        return ctx.step(lambda _: item)

    result = context.map(
        ["fa", "fb"], item_step, name="flat", config=MapConfig(max_concurrency=1, nesting_type=NestingType.FLAT)
    )
    return result.get_results()


@durable_execution
def h_9_13(event, context: DurableContext):
    result = context.map(
        event,
        lambda ctx, item, i, items: item * 10,
        name="named-items",
        config=MapConfig(max_concurrency=1, item_namer=lambda item, index: f"item-{item}"),
    )
    return result.get_results()


class PrefixSerDes(SerDes):
    """Per-item serializer: stores a string as ``wrapped:<value>``."""

    def serialize(self, value, serdes_context) -> str:
        return f"wrapped:{value}"

    def deserialize(self, data: str, serdes_context):
        if not data.startswith("wrapped:"):
            msg = f"not a wrapped value: {data!r}"
            raise ValueError(msg)
        return data[len("wrapped:") :]


@durable_execution
def h_9_14(event, context: DurableContext):
    result = context.map(
        ["x", "y"],
        lambda ctx, item, i, items: item.upper(),
        name="serdes",
        config=MapConfig(max_concurrency=1, item_serdes=PrefixSerDes()),
    )
    return result.get_results()


@durable_execution
def h_9_15(event, context: DurableContext):
    def func(ctx: DurableContext, item, index, items):
        if index == 1:
            ctx.wait(Duration.from_seconds(1))
        return ctx.step(lambda _: item, name=f"emit-{index}")

    return context.map(["r0", "r1"], func, name="suspend", config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def h_9_16(event, context: DurableContext):
    def large(ctx, item, index, items):
        return f"{index}:" + "x" * (70 * 1024)

    result = context.map([0, 1, 2, 3], large, name="large", config=MapConfig(max_concurrency=1))
    return {"successCount": result.success_count, "totalCount": result.total_count}


@durable_execution
def h_9_17(event, context: DurableContext):
    result = context.map(
        ["a", "b"], lambda ctx, item, i, items: item.upper(), name="then-wait", config=MapConfig(max_concurrency=1)
    )
    context.wait(Duration.from_seconds(1))
    return result.get_results()


@durable_execution
def h_9_18(event, context: DurableContext):
    result = context.map(
        ["ok", "fail"], ok_or_fail, name="fail-then-wait", config=sequential(tolerated_failure_count=1)
    )
    context.wait(Duration.from_seconds(1))
    return projection(result)


class OperationSerDes(SerDes):
    """Whole-result serializer: ``OPSERDE:`` + comma-joined successful results."""

    PREFIX = "OPSERDE:"

    def serialize(self, value, serdes_context) -> str:
        return self.PREFIX + ",".join(str(r) for r in value.get_results())

    def deserialize(self, data: str, serdes_context):
        if not data.startswith(self.PREFIX):
            msg = f"not an OPSERDE payload: {data!r}"
            raise ValueError(msg)
        body = data[len(self.PREFIX) :]
        values = body.split(",") if body else []
        items = [BatchItem(index=i, status=BatchItemStatus.SUCCEEDED, result=v) for i, v in enumerate(values)]
        return BatchResult(all=items, completion_reason=CompletionReason.ALL_COMPLETED)


def _op_serde_map(context: DurableContext, name: str):
    return context.map(
        ["x", "y"],
        lambda ctx, item, i, items: item.upper(),
        name=name,
        config=MapConfig(max_concurrency=1, serdes=OperationSerDes(), item_serdes=JsonSerDes()),
    )


@durable_execution
def h_9_19(event, context: DurableContext):
    return _op_serde_map(context, "op-serde").get_results()


@durable_execution
def h_9_20(event, context: DurableContext):
    result = _op_serde_map(context, "op-serde-replay")
    context.wait(Duration.from_seconds(1))
    return result.get_results()
