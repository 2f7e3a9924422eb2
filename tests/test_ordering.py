"""Completions that come due while an invocation runs are recorded after its InvocationCompleted.

The SDK only observes a completion mid-invocation when it polls (an empty refresh
checkpoint from parallel/map branches); otherwise it suspends on the operation. These
tests hold an invocation open by hand (no engine) to make a slow invocation tail
deterministic, as conformance requirements 1-9, 5-x and 7-1 saw it under load.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.engine.control import InvocationInput, InvocationOutcome
from recorder.errors import CallbackTimeoutException
from tests.conftest import register

CB = "c" * 64
WAIT = "w" * 64
INVOKE = "i" * 64


def _begin(d: Durascope, function: str, payload: str = "{}") -> InvocationInput:
    started = d.control.start_execution(function, payload)
    inv = d.control.begin_invocation(started.execution_id, "test")
    assert inv is not None
    return inv


def _types(d: Durascope, arn: str) -> list[str]:
    return [e["EventType"] for e in d.history(arn)]


def _checkpoint(d: Durascope, inv: InvocationInput, updates: list[dict[str, Any]]) -> dict[str, Any]:
    return d.control.checkpoint(inv.arn, inv.token, updates)


def test_callback_result_during_an_invocation_is_recorded_after_it(control_only: Durascope) -> None:
    d = control_only
    register(d, "f", "th_basic:add_one")
    inv = _begin(d, "f")
    out = _checkpoint(d, inv, [{"Id": CB, "Type": "CALLBACK", "Action": "START", "SubType": "Callback", "Name": "cb"}])
    callback_id = out["NewExecutionState"]["Operations"][0]["CallbackDetails"]["CallbackId"]
    d.callback_success(callback_id, b'"yes"')
    assert _types(d, inv.arn) == ["ExecutionStarted", "CallbackStarted"]
    with pytest.raises(CallbackTimeoutException):  # a second result is refused
        d.callback_success(callback_id, b'"again"')
    d.control.end_invocation(inv, InvocationOutcome("PENDING"))
    h = d.history(inv.arn)
    assert [e["EventType"] for e in h] == [
        "ExecutionStarted",
        "CallbackStarted",
        "InvocationCompleted",
        "CallbackSucceeded",
    ]
    assert h[-1]["CallbackSucceededDetails"]["Result"] == {"Payload": '"yes"', "Truncated": False}
    # The next invocation is owed and sees the callback done.
    again = d.control.begin_invocation(inv.execution_id, "test")
    assert again is not None and CB in again.updated_operation_ids
    assert next(o for o in again.operations if o["Id"] == CB)["Status"] == "SUCCEEDED"


def test_a_wait_due_during_an_invocation_completes_after_it(control_only: Durascope) -> None:
    d = control_only
    register(d, "f", "th_basic:add_one")
    inv = _begin(d, "f")
    out = _checkpoint(
        d,
        inv,
        [
            {
                "Id": WAIT,
                "Type": "WAIT",
                "Action": "START",
                "SubType": "Wait",
                "Name": "w",
                "WaitOptions": {"WaitSeconds": 1},
            }
        ],
    )
    time.sleep(1.1)  # the wait comes due while the invocation is still running (a slow tail)
    # The engine's timer loop does not see it as due while the invocation runs.
    assert all(kind != "wait" for _, kind, _ in d.control.due_timers())
    # A non-empty checkpoint does not complete it either; only the end of the invocation does.
    d.control.checkpoint(
        inv.arn,
        out["CheckpointToken"],
        [{"Id": "s" * 64, "Type": "STEP", "Action": "START", "SubType": "Step", "Name": "s"}],
    )
    assert "WaitSucceeded" not in _types(d, inv.arn)
    d.control.end_invocation(inv, InvocationOutcome("PENDING"))
    assert _types(d, inv.arn)[-3:] == ["StepStarted", "InvocationCompleted", "WaitSucceeded"]


def test_an_empty_refresh_checkpoint_completes_due_waits(control_only: Durascope) -> None:
    """Branches suspended until a time poll with empty checkpoints; they must see the wait done."""
    d = control_only
    register(d, "f", "th_basic:add_one")
    inv = _begin(d, "f")
    out = _checkpoint(
        d,
        inv,
        [
            {
                "Id": WAIT,
                "Type": "WAIT",
                "Action": "START",
                "SubType": "Wait",
                "Name": "w",
                "WaitOptions": {"WaitSeconds": 1},
            }
        ],
    )
    time.sleep(1.1)  # the wait comes due while the handler is polling
    refreshed = d.control.checkpoint(inv.arn, out["CheckpointToken"], [])
    assert [o["Status"] for o in refreshed["NewExecutionState"]["Operations"]] == ["SUCCEEDED"]
    assert _types(d, inv.arn)[-1] == "WaitSucceeded"


def test_a_chained_invoke_finishing_during_the_parent_invocation_is_recorded_after_it(control_only: Durascope) -> None:
    d = control_only
    register(d, "parent", "th_basic:add_one")
    register(d, "child", "th_basic:add_one")
    parent = _begin(d, "parent")
    out = _checkpoint(
        d,
        parent,
        [
            {
                "Id": INVOKE,
                "Type": "CHAINED_INVOKE",
                "Action": "START",
                "SubType": "ChainedInvoke",
                "Name": "call",
                "Payload": '{"a": 1}',
                "ChainedInvokeOptions": {"FunctionName": "child"},
            }
        ],
    )
    assert out["NewExecutionState"]["Operations"][0]["Status"] == "STARTED"
    child_arn = next(e for e in d.history(parent.arn) if e["EventType"] == "ChainedInvokeStarted")[
        "ChainedInvokeStartedDetails"
    ]["DurableExecutionArn"]
    child = d.control.begin_invocation(child_arn.rsplit("/", 1)[1], "test")
    assert child is not None
    d.control.checkpoint(
        child.arn, child.token, [{"Id": "execution-result-1", "Type": "EXECUTION", "Action": "SUCCEED", "Payload": "2"}]
    )
    d.control.end_invocation(child, InvocationOutcome("SUCCEEDED", result=""))
    assert d.describe(child_arn).status == "SUCCEEDED"
    assert _types(d, parent.arn) == ["ExecutionStarted", "ChainedInvokeStarted"]
    d.control.end_invocation(parent, InvocationOutcome("PENDING"))
    h = d.history(parent.arn)
    assert [e["EventType"] for e in h] == [
        "ExecutionStarted",
        "ChainedInvokeStarted",
        "InvocationCompleted",
        "ChainedInvokeSucceeded",
    ]
    assert h[-1]["ChainedInvokeSucceededDetails"]["Result"]["Payload"] == "2"
