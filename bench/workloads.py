"""Benchmark handlers: the same code runs on Durascope and on the SDK's local test runner.

Every handler reads its size from the event (``{"n": 200}``) so one function covers
W1 (200 steps) and W1x4 (800 steps). Each step returns a small value.

    W1 / W1x4  sequential    n sequential steps
    W2         map_items     context.map over n items, one step per item
    W4         three_steps   3 sequential steps (started many times at once)
"""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    durable_execution,
    durable_step,
)


def _event_dict(event: Any) -> dict[str, Any]:
    # Durascope and the test runner both hand the handler the decoded input;
    # accept a JSON string as well so the handler does not care which.
    if isinstance(event, str):
        return json.loads(event or "{}")
    return dict(event or {})


@durable_step
def add_one(step_context: StepContext, i: int) -> int:
    return i + 1


@durable_step
def double(step_context: StepContext, i: int) -> int:
    return i * 2


@durable_execution
def sequential(event: Any, context: DurableContext) -> dict[str, int]:
    n = int(_event_dict(event).get("n", 200))
    total = 0
    for i in range(n):
        total += context.step(add_one(i), name=f"s{i}")
    return {"n": n, "total": total}


def _map_item(ctx: DurableContext, item: int, index: int, items: Any) -> int:
    return ctx.step(double(item), name="item")


@durable_execution
def map_items(event: Any, context: DurableContext) -> dict[str, int]:
    n = int(_event_dict(event).get("n", 500))
    result = context.map(list(range(n)), _map_item, name="map")
    values = result.get_results()
    return {"n": len(values), "total": sum(values)}


@durable_execution
def three_steps(event: Any, context: DurableContext) -> dict[str, int]:
    a = context.step(add_one(1), name="a")
    b = context.step(add_one(a), name="b")
    c = context.step(add_one(b), name="c")
    return {"c": c}


# name -> (handler attribute, payload, what is counted, count)
WORKLOADS: dict[str, dict[str, Any]] = {
    "W1": {"handler": "sequential", "payload": {"n": 200}, "steps": 200, "executions": 1},
    "W1x4": {"handler": "sequential", "payload": {"n": 800}, "steps": 800, "executions": 1},
    "W2": {"handler": "map_items", "payload": {"n": 500}, "steps": 500, "executions": 1},
    "W4": {"handler": "three_steps", "payload": {}, "steps": 3, "executions": 100},
}

EXPECTED = {
    "W1": {"n": 200, "total": sum(range(1, 201))},
    "W1x4": {"n": 800, "total": sum(range(1, 801))},
    "W2": {"n": 500, "total": 2 * sum(range(500))},
    "W4": {"c": 4},
}
