"""Handlers for the ``parallel`` suite (requirements 8-1 .. 8-22)."""

from __future__ import annotations

import json

from aws_durable_execution_sdk_python import DurableContext, ParallelBranch, durable_execution
from aws_durable_execution_sdk_python.config import CompletionConfig, Duration, NestingType, ParallelConfig
from aws_durable_execution_sdk_python.serdes import SerDes


def const(value):
    return lambda ctx: value


def fail(message: str = "branch failed"):
    def branch(ctx):
        raise RuntimeError(message)

    return branch


def step_branch(value):
    return lambda ctx: ctx.step(lambda _: value)


def projection(result) -> dict:
    return {
        "completionReason": result.completion_reason.value,
        "status": result.status.value,
        "successCount": result.success_count,
        "failureCount": result.failure_count,
        "totalCount": result.total_count,
    }


def sequential(**completion) -> ParallelConfig:
    return ParallelConfig(max_concurrency=1, completion_config=CompletionConfig(**completion))


@durable_execution
def h_8_1(event, context: DurableContext):
    result = context.parallel(
        [step_branch("task-1"), step_branch("task-2")], name="parallel", config=ParallelConfig(max_concurrency=1)
    )
    return result.get_results()


@durable_execution
def h_8_2(event, context: DurableContext):
    return context.parallel([const("alpha"), const("beta")], config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def h_8_3(event, context: DurableContext):
    branches = [ParallelBranch(func=const("one"), name="first"), ParallelBranch(func=const("two"), name="second")]
    return context.parallel(branches, name="named", config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def h_8_4(event, context: DurableContext):
    branches = [const("hello"), const(42), const({"k": "v"})]
    return context.parallel(branches, name="hetero", config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def h_8_5(event, context: DurableContext):
    return context.parallel([], name="empty").get_results()


@durable_execution
def h_8_6(event, context: DurableContext):
    result = context.parallel(
        [const("ok"), fail(), const("never")], name="failfast", config=sequential(tolerated_failure_count=0)
    )
    return projection(result)


@durable_execution
def h_8_7(event, context: DurableContext):
    result = context.parallel(
        [fail("first branch failed"), const("never")], name="throwing", config=sequential(tolerated_failure_count=0)
    )
    result.throw_if_error()
    return result.get_results()


@durable_execution
def h_8_8(event, context: DurableContext):
    result = context.parallel(
        [const("a"), const("b"), const("c"), const("d")], name="min-successful", config=sequential(min_successful=2)
    )
    p = projection(result)
    return {"completionReason": p["completionReason"], "successCount": p["successCount"], "totalCount": p["totalCount"]}


@durable_execution
def h_8_9(event, context: DurableContext):
    result = context.parallel(
        [const("a"), fail(), const("c")], name="tolerated", config=sequential(tolerated_failure_count=1)
    )
    return projection(result)


def _short(p: dict) -> dict:
    return {k: p[k] for k in ("completionReason", "successCount", "failureCount", "totalCount")}


@durable_execution
def h_8_10(event, context: DurableContext):
    result = context.parallel(
        [fail(), fail(), const("c")], name="tolerated-exceeded", config=sequential(tolerated_failure_count=1)
    )
    return _short(projection(result))


@durable_execution
def h_8_11(event, context: DurableContext):
    result = context.parallel(
        [const("r0"), const("r1"), const("r2")], name="concurrent", config=ParallelConfig(max_concurrency=2)
    )
    return result.get_results()


@durable_execution
def h_8_12(event, context: DurableContext):
    result = context.parallel(
        [step_branch("fa"), step_branch("fb")],
        name="flat",
        config=ParallelConfig(max_concurrency=1, nesting_type=NestingType.FLAT),
    )
    return result.get_results()


@durable_execution
def h_8_13(event, context: DurableContext):
    result = context.parallel(
        [fail(), fail(), const("c"), const("d")],
        name="tolerated-pct",
        config=sequential(tolerated_failure_percentage=25),
    )
    return _short(projection(result))


@durable_execution
def h_8_14(event, context: DurableContext):
    def waiting_branch(ctx: DurableContext):
        ctx.wait(Duration.from_seconds(2))
        return "b1"

    result = context.parallel(
        [step_branch("b0"), waiting_branch], name="replay", config=ParallelConfig(max_concurrency=1)
    )
    return result.get_results()


class WrappingSerDes(SerDes):
    """Serializes v as {"wrapped": v}; reads the envelope back to v."""

    def serialize(self, value, serdes_context) -> str:
        return json.dumps({"wrapped": value})

    def deserialize(self, data: str, serdes_context):
        return json.loads(data)["wrapped"]


@durable_execution
def h_8_15(event, context: DurableContext):
    result = context.parallel(
        [const("x"), const("y")],
        name="serde",
        config=ParallelConfig(max_concurrency=1, item_serdes=WrappingSerDes()),
    )
    return result.get_results()


@durable_execution
def h_8_16(event, context: DurableContext):
    result = context.parallel(
        [fail("b0"), fail("b1"), fail("b2")], name="all-fail", config=sequential(tolerated_failure_count=3)
    )
    return projection(result)


@durable_execution
def h_8_17(event, context: DurableContext):
    result = context.parallel(
        [const("a"), fail(), const("c")], name="min-not-reached", config=sequential(min_successful=3)
    )
    return projection(result)


@durable_execution
def h_8_18(event, context: DurableContext):
    result = context.parallel(
        [fail(), fail(), const("c"), const("d")],
        name="combined",
        config=sequential(min_successful=3, tolerated_failure_count=1),
    )
    return _short(projection(result))


@durable_execution
def h_8_19(event, context: DurableContext):
    result = context.parallel(
        [const("a"), const("b")], name="bad-concurrency", config=ParallelConfig(max_concurrency=0)
    )
    return result.get_results()


@durable_execution
def h_8_20(event, context: DurableContext):
    result = context.parallel(
        [const("a"), fail(), const("c")], name="accessors", config=sequential(tolerated_failure_count=1)
    )
    return {
        "hasFailure": result.has_failure,
        "successCount": len(result.succeeded()),
        "failureCount": len(result.failed()),
        "errorCount": len(result.get_errors()),
    }


@durable_execution
def h_8_21(event, context: DurableContext):
    def branch_a(ctx: DurableContext):
        inner = ctx.parallel(
            [step_branch("i1"), step_branch("i2")], name="inner", config=ParallelConfig(max_concurrency=1)
        )
        return inner.get_results()

    return context.parallel([branch_a], name="outer", config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def h_8_22(event, context: DurableContext):
    result = context.parallel(
        [fail(), const("b"), const("c"), const("d")],
        name="pct-boundary",
        config=sequential(tolerated_failure_percentage=25),
    )
    return projection(result)
