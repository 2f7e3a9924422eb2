"""Bad input to the control plane gets the AWS error and changes nothing (docs/protocol.md#invariants, 8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select, text

from recorder.api import Durascope
from recorder.engine.control import InvocationInput, InvocationOutcome
from recorder.errors import (
    DurableExecutionAlreadyStartedException,
    InvalidParameterValueException,
    ResourceNotFoundException,
    ServiceError,
)
from recorder.store.models import Event, Operation
from tests.conftest import register

STEP = "a" * 64
CTX = "c" * 64


@pytest.fixture
def inv(control_only: Durascope) -> InvocationInput:
    register(control_only, "add-one", "th_basic:add_one")
    started = control_only.control.start_execution("add-one", '{"a": 1}')
    got = control_only.control.begin_invocation(started.execution_id, "test-owner")
    assert got is not None
    return got


def _log_size(d: Durascope) -> tuple[int, int]:
    with d.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Event)) or 0,
            s.scalar(select(func.count()).select_from(Operation)) or 0,
        )


def _rejected(
    d: Durascope,
    inv: InvocationInput,
    updates: Any,
    exc: type[ServiceError] = InvalidParameterValueException,
    match: str | None = None,
    token: Any = None,
) -> ServiceError:
    before = _log_size(d)
    with pytest.raises(exc, match=match) as info:
        d.control.checkpoint(inv.arn, inv.token if token is None else token, updates)
    assert _log_size(d) == before, "a rejected checkpoint must not write anything"
    return info.value


def step(action: str, op_id: str = STEP, **extra: Any) -> dict[str, Any]:
    return {"Id": op_id, "Type": "STEP", "Action": action, "SubType": "Step", "Name": "s", **extra}


@pytest.mark.parametrize(
    "updates,match",
    [
        ("not a list", "Updates must be a list"),
        ([42], r"Updates\[0\] must be an object"),
        ([{"Id": STEP, "Action": "START"}], r"Type must be one of"),
        ([{"Id": STEP, "Type": "STEP", "Action": "JUMP"}], r"Action must be one of"),
        ([{"Id": "bad id!", "Type": "STEP", "Action": "START"}], r"Id must match"),
        ([step("SUCCEED", Payload=123)], r"Payload must be a string"),
        ([step("FAIL", Error="boom")], r"Error must be an object"),
        ([step("FAIL", Error={"ErrorMessage": 5})], r"ErrorMessage must be a string"),
        ([step("RETRY", StepOptions={"NextAttemptDelaySeconds": 0}, Error={})], r"NextAttemptDelaySeconds must be"),
        (
            [{"Id": "w" * 64, "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": "1"}}],
            r"WaitSeconds must be",
        ),
        ([step("START", Name="\u00e9t\u00e9")], r"Name must be"),
    ],
)
def test_malformed_updates(control_only: Durascope, inv: InvocationInput, updates: Any, match: str) -> None:
    _rejected(control_only, inv, updates, match=match)


def test_unknown_and_missing_tokens(control_only: Durascope, inv: InvocationInput) -> None:
    for bad in ("", "bm9wZQ==", 17):
        err = _rejected(control_only, inv, [step("START")], token=bad)
        assert err.message.startswith("Invalid checkpoint token")


def test_a_token_is_consumed_by_each_accepted_checkpoint(control_only: Durascope, inv: InvocationInput) -> None:
    out = control_only.control.checkpoint(inv.arn, inv.token, [step("START")])
    assert out["CheckpointToken"] != inv.token
    err = _rejected(control_only, inv, [step("SUCCEED", Payload="1")])  # the old token again
    assert err.message.startswith("Invalid checkpoint token")
    # An empty checkpoint is accepted and consumes the token too.
    out2 = control_only.control.checkpoint(inv.arn, out["CheckpointToken"], [])
    assert out2["CheckpointToken"] not in (out["CheckpointToken"], None)


def test_tokens_of_an_earlier_invocation_are_invalid(control_only: Durascope, inv: InvocationInput) -> None:
    c = control_only.control
    c.end_invocation(inv, InvocationOutcome("ERROR", error={}))
    with control_only.db.write() as conn:  # skip the retry back-off
        conn.execute(text("UPDATE engine_state SET next_invoke_ms = 0"))
    second = c.begin_invocation(inv.execution_id, "test-owner")
    assert second is not None and second.token != inv.token
    err = _rejected(control_only, inv, [step("START")])
    assert err.message.startswith("Invalid checkpoint token")


@pytest.mark.parametrize(
    "updates,match",
    [
        ([{"Id": "w" * 64, "Type": "WAIT", "Action": "CANCEL"}], "cannot CANCEL a wait in status absent"),
        ([step("START", ParentId=CTX)], "is not a CONTEXT operation"),
        ([step("START"), step("START")], "appears twice"),
        ([step("START"), step("SUCCEED", Payload="1"), step("FAIL", Error={})], "appears twice"),
        ([{"Id": "k" * 64, "Type": "CALLBACK", "Action": "SUCCEED"}], "callbacks take only START"),
        ([{"Id": STEP, "Type": "STEP", "Action": "CANCEL"}], "steps cannot be cancelled"),
        ([{"Id": "x", "Type": "EXECUTION", "Action": "START"}], "EXECUTION takes only SUCCEED or FAIL"),
        ([{"Id": "x", "Type": "EXECUTION", "Action": "SUCCEED", "Payload": "1"}, step("START")], "must be the last"),
        ([step("SUCCEED", Payload="1", Error={"ErrorMessage": "x"})], "SUCCEED takes no Error"),
        ([step("RETRY", Error={})], "RETRY needs StepOptions"),
        ([{"Id": "i" * 64, "Type": "CHAINED_INVOKE", "Action": "START"}], "needs ChainedInvokeOptions"),
    ],
)
def test_invalid_transitions(control_only: Durascope, inv: InvocationInput, updates: Any, match: str) -> None:
    _rejected(control_only, inv, updates, match=match)


def test_transitions_on_a_finished_step_and_identity_changes(control_only: Durascope, inv: InvocationInput) -> None:
    out = control_only.control.checkpoint(inv.arn, inv.token, [step("START"), step("SUCCEED", Payload="2")])
    token = out["CheckpointToken"]
    for updates, match in (
        ([step("FAIL", Error={})], "cannot FAIL a step in status SUCCEEDED"),
        ([step("START")], "cannot START a step in status SUCCEEDED"),
        ([{"Id": STEP, "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}}], "is a STEP, not a WAIT"),
    ):
        _rejected(control_only, inv, updates, match=match, token=token)


def test_a_rejected_batch_applies_none_of_its_valid_updates(control_only: Durascope, inv: InvocationInput) -> None:
    _rejected(control_only, inv, [step("START"), {"Id": "k" * 64, "Type": "CALLBACK", "Action": "FAIL"}])
    out = control_only.control.checkpoint(inv.arn, inv.token, [step("START")])
    assert [o["Status"] for o in out["NewExecutionState"]["Operations"]] == ["STARTED"]


def test_payloads_over_the_limits(control_only: Durascope, inv: InvocationInput) -> None:
    big = "x" * (1024 * 1024 + 1)
    _rejected(control_only, inv, [step("START"), step("SUCCEED", Payload=json.dumps(big))], match="larger than")
    _rejected(control_only, inv, [step("FAIL", Error={"ErrorMessage": big})], match="larger than")


def test_client_token_makes_a_retried_checkpoint_idempotent(control_only: Durascope, inv: InvocationInput) -> None:
    first = control_only.control.checkpoint(inv.arn, inv.token, [step("START")], client_token="req-1")
    size = _log_size(control_only)
    again = control_only.control.checkpoint(inv.arn, inv.token, [step("START")], client_token="req-1")
    assert again == first
    assert _log_size(control_only) == size


def test_unknown_function_and_execution(control_only: Durascope) -> None:
    with pytest.raises(ResourceNotFoundException, match="Function not found"):
        control_only.start("no-such-function", "{}")
    with pytest.raises(ResourceNotFoundException):
        control_only.control.checkpoint(
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST/durable-execution/n/" + "0" * 36, "dG9r", []
        )
    with pytest.raises(InvalidParameterValueException, match="not a valid durable execution ARN"):
        control_only.control.checkpoint("arn:aws:lambda:nope", "dG9r", [])


def test_execution_names_are_idempotent(control_only: Durascope) -> None:
    register(control_only, "add-one", "th_basic:add_one")
    first = control_only.start("add-one", '{"a": 1}', name="order-42")
    assert control_only.start("add-one", '{"a": 1}', name="order-42") == first
    size = _log_size(control_only)
    with pytest.raises(DurableExecutionAlreadyStartedException):
        control_only.start("add-one", '{"a": 2}', name="order-42")
    with pytest.raises(InvalidParameterValueException, match="DurableExecutionName"):
        control_only.start("add-one", "{}", name="bad name")
    assert _log_size(control_only) == size


def test_forged_markers_are_invalid_not_a_crash(control_only: Durascope, inv: InvocationInput) -> None:
    import base64

    from recorder.queries import history_page

    huge = base64.b64encode(json.dumps({"p": 10**30}).encode()).decode()
    with pytest.raises(InvalidParameterValueException, match="Invalid Marker"):
        history_page(control_only.db, inv.arn, marker=huge)
    forged = base64.b64encode(json.dumps({"t": inv.token[-16:], "s": -1}).encode()).decode()
    with pytest.raises(InvalidParameterValueException, match="Invalid Marker"):
        control_only.control.get_state(inv.arn, inv.token, marker=forged)
    nested = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()  # past the decoder's recursion limit
    with pytest.raises(InvalidParameterValueException, match="Invalid Marker"):
        history_page(control_only.db, inv.arn, marker=nested)
    with pytest.raises(InvalidParameterValueException, match="Invalid Marker"):
        control_only.control.get_state(inv.arn, inv.token, marker=nested)
    other_name = inv.arn.replace("/durable-execution/", "/durable-execution/x").rsplit("/", 2)
    with pytest.raises(ResourceNotFoundException):
        control_only.control.get_state("/".join([other_name[0], "other", other_name[2]]), inv.token)


def test_handler_output_the_store_cannot_keep_fails_the_execution(
    control_only: Durascope, inv: InvocationInput
) -> None:
    """A Result with U+0000 (PostgreSQL text cannot hold it) is an invalid output, not a crash."""
    outcome = InvocationOutcome.from_envelope({"Status": "SUCCEEDED", "Result": '"a\x00b"'})
    control_only.control.end_invocation(inv, outcome)
    done = control_only.describe(inv.arn)
    assert done.status == "FAILED" and done.error is not None
    assert done.error["ErrorType"] == "InvalidParameterValueException" and "NUL" in done.error["ErrorMessage"]


def test_a_long_error_type_is_kept_whole_in_the_history(control_only: Durascope, inv: InvocationInput) -> None:
    """The list's error-type column holds 256 characters; the history keeps what the handler said."""
    long_type = "E" * 300 + "\x00x"
    control_only.control.end_invocation(
        inv,
        InvocationOutcome.from_envelope({"Status": "FAILED", "Error": {"ErrorType": long_type, "ErrorMessage": "m"}}),
    )
    done = control_only.describe(inv.arn)
    assert done.status == "FAILED" and done.error is not None and done.error["ErrorType"] == long_type
    failed = next(e for e in control_only.history(inv.arn) if e["EventType"] == "ExecutionFailed")
    assert failed["ExecutionFailedDetails"]["Error"]["Payload"]["ErrorType"] == long_type
    with control_only.db.read() as s:
        assert s.scalar(text("SELECT error_type FROM executions")) == ("E" * 300 + "x")[:256]


def test_callback_results_with_nul_are_refused(control_only: Durascope, inv: InvocationInput) -> None:
    out = control_only.control.checkpoint(
        inv.arn, inv.token, [{"Id": "cb", "Type": "CALLBACK", "Action": "START", "SubType": "Callback", "Name": "cb"}]
    )
    callback_id = out["NewExecutionState"]["Operations"][-1]["CallbackDetails"]["CallbackId"]
    before = _log_size(control_only)
    with pytest.raises(InvalidParameterValueException, match="NUL"):
        control_only.callback_success(callback_id, b'"a\x00b"')
    assert _log_size(control_only) == before


def test_names_with_a_trailing_newline_are_refused(control_only: Durascope) -> None:
    register(control_only, "add-one", "th_basic:add_one")
    with pytest.raises(InvalidParameterValueException):
        control_only.start("add-one", "{}", name="order-1\n")
    with pytest.raises(InvalidParameterValueException):
        control_only.describe(control_only.start("add-one", "{}") + "\n")
