"""The engine driving the official SDK: primitives, timers, callbacks, stop, restart."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.errors import CallbackTimeoutException, ResourceNotFoundException
from recorder.queries import execution_logs
from tests.conftest import register


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["EventType"] for e in history]


def callback_id(ds: Durascope, arn: str) -> str:
    return ds.wait_for(
        lambda: next(
            (e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn) if e["EventType"] == "CallbackStarted"),
            None,
        ),
        15,
        "no callback started",
    )


def suspended(ds: Durascope, arn: str, invocations: int = 1) -> None:
    ds.wait_for(lambda: types(ds.history(arn)).count("InvocationCompleted") >= invocations, 15, "not suspended")


def test_retry_history_matches_the_worked_example(ds: Durascope) -> None:
    register(ds, "flaky", "th_basic:flaky")
    arn = ds.start("flaky", f'{{"key": "{uuid.uuid4()}"}}')
    done = ds.wait(arn, 30)
    assert done.status == "SUCCEEDED"
    h = ds.history(arn)
    assert types(h) == [
        "ExecutionStarted",
        "StepStarted",
        "StepFailed",
        "InvocationCompleted",
        "StepStarted",
        "StepFailed",
        "InvocationCompleted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    assert [e["EventId"] for e in h] == list(range(1, 12))
    assert h[2]["StepFailedDetails"]["RetryDetails"] == {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 1}
    assert h[2]["StepFailedDetails"]["Error"]["Payload"]["ErrorMessage"] == "boom 1"
    assert h[2]["StepFailedDetails"]["Error"]["Payload"]["ErrorType"] == "ValueError"
    assert h[8]["StepSucceededDetails"]["RetryDetails"] == {"CurrentAttempt": 3}
    # The retry delay is honoured: the second attempt starts >= 1 s after the first failed.
    assert h[4]["EventTimestamp"] - h[2]["EventTimestamp"] >= 0.99
    inv = h[3]["InvocationCompletedDetails"]
    assert set(inv) >= {"StartTimestamp", "EndTimestamp", "RequestId"} and "Error" not in inv
    assert h[0]["ExecutionStartedDetails"]["Input"] == {
        "Payload": h[0]["ExecutionStartedDetails"]["Input"]["Payload"],
        "Truncated": False,
    }


def test_exhausted_retries_fail_the_execution(ds: Durascope) -> None:
    register(ds, "doomed", "th_basic:always_fails")
    done = ds.wait(ds.start("doomed", "{}"), 30)
    assert done.status == "FAILED"
    assert done.error and "never works" in done.error["ErrorMessage"]
    h = ds.history(ds.describe(done.arn).arn)
    fails = [e for e in h if e["EventType"] == "StepFailed"]
    assert [f["StepFailedDetails"]["RetryDetails"]["CurrentAttempt"] for f in fails] == [1, 2]
    assert "NextAttemptDelaySeconds" not in fails[-1]["StepFailedDetails"]["RetryDetails"]
    assert types(h)[-1] == "ExecutionFailed"


def test_wait_suspends_and_resumes(ds: Durascope) -> None:
    register(ds, "waits", "th_basic:waits")
    arn = ds.start("waits", '{"seconds": 1}')
    assert ds.wait(arn, 30).status == "SUCCEEDED"
    h = ds.history(arn)
    assert types(h) == [
        "ExecutionStarted",
        "WaitStarted",
        "InvocationCompleted",
        "WaitSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    started = h[1]["WaitStartedDetails"]
    assert started["Duration"] == 1
    assert started["ScheduledEndTimestamp"] == pytest.approx(h[1]["EventTimestamp"] + 1, abs=0.002)
    assert h[3]["EventTimestamp"] >= started["ScheduledEndTimestamp"]


def test_callback_success_failure_and_closed_callbacks(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval")
    ok = ds.start("approval", "{}")
    cid = callback_id(ds, ok)
    suspended(ds, ok)
    ds.callback_heartbeat(cid)
    ds.callback_success(cid, b'"approved"')
    assert ds.wait(ok, 15).status == "SUCCEEDED"
    h = ds.history(ok)
    assert types(h) == [
        "ExecutionStarted",
        "ContextStarted",
        "CallbackStarted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "CallbackSucceeded",
        "ContextSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    assert h[6]["CallbackSucceededDetails"]["Result"] == {"Payload": '"approved"', "Truncated": False}
    assert h[2]["CallbackStartedDetails"] == {"CallbackId": cid, "Timeout": 300}
    with pytest.raises(CallbackTimeoutException):
        ds.callback_success(cid, b'"again"')
    with pytest.raises(ResourceNotFoundException):
        ds.callback_success("bm8tc3VjaC1jYWxsYmFjaw==", b"1")

    bad = ds.start("approval", "{}")
    cid2 = callback_id(ds, bad)
    ds.callback_failure(cid2, {"ErrorMessage": "rejected by reviewer", "ErrorType": "Rejected"})
    failed = ds.wait(bad, 15)
    assert failed.status == "FAILED"
    failed_event = next(e for e in ds.history(bad) if e["EventType"] == "CallbackFailed")
    assert failed_event["CallbackFailedDetails"]["Error"]["Payload"] == {
        "ErrorMessage": "rejected by reviewer",
        "ErrorType": "Rejected",
    }


@pytest.mark.parametrize(
    "config,error_type",
    [
        ('{"timeout": 1}', "Callback.Timeout"),
        ('{"timeout": 60, "heartbeat": 1}', "Callback.Heartbeat"),
    ],
)
def test_callback_timeouts(ds: Durascope, config: str, error_type: str) -> None:
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", config)
    assert ds.wait(arn, 20).status == "FAILED"
    timed_out = next(e for e in ds.history(arn) if e["EventType"] == "CallbackTimedOut")
    assert timed_out["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == error_type


def test_heartbeats_keep_a_callback_alive(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", '{"timeout": 60, "heartbeat": 2}')
    cid = callback_id(ds, arn)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:  # heartbeats every 0.5 s for longer than the heartbeat timeout
        ds.callback_heartbeat(cid)
        time.sleep(0.5)
    assert ds.describe(arn).status == "RUNNING"
    ds.callback_success(cid, b'"late but alive"')
    assert ds.wait(arn, 15).status == "SUCCEEDED"


def test_execution_timeout(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval", execution_timeout=1)
    arn = ds.start("approval", "{}")
    cid = callback_id(ds, arn)
    done = ds.wait(arn, 15)
    assert done.status == "TIMED_OUT"
    h = ds.history(arn)
    assert h[-1]["EventType"] == "ExecutionTimedOut"
    assert (
        h[-1]["ExecutionTimedOutDetails"]["Error"]["Payload"]["ErrorMessage"] == "Execution timed out after 1 seconds."
    )
    with pytest.raises(CallbackTimeoutException):
        ds.callback_success(cid, b"1")


def test_stop(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", "{}")
    callback_id(ds, arn)
    end = ds.stop(arn, {"ErrorMessage": "operator stopped it", "ErrorType": "Manual"})
    done = ds.describe(arn)
    assert done.status == "STOPPED" and done.end_ms == end
    assert ds.stop(arn) == end  # idempotent
    last = ds.history(arn)[-1]
    assert last["EventType"] == "ExecutionStopped"
    assert last["ExecutionStoppedDetails"]["Error"]["Payload"] == {
        "ErrorMessage": "operator stopped it",
        "ErrorType": "Manual",
    }


def test_chained_invoke_runs_a_child_execution(ds: Durascope) -> None:
    register(ds, "add-one", "th_basic:add_one")
    register(ds, "parent", "th_basic:calls_child")
    arn = ds.start("parent", '{"target": "add-one"}')
    done = ds.wait(arn, 30)
    assert done.status == "SUCCEEDED" and done.result == "42"
    h = ds.history(arn)
    started = next(e for e in h if e["EventType"] == "ChainedInvokeStarted")["ChainedInvokeStartedDetails"]
    assert started["FunctionName"] == "add-one" and started["ExecutedVersion"] == "$LATEST"
    child = ds.describe(started["DurableExecutionArn"])
    assert child.status == "SUCCEEDED" and child.function == "add-one"
    assert "ChainedInvokeSucceeded" in types(h)


def test_chained_invoke_of_an_unknown_function_fails_the_operation(ds: Durascope) -> None:
    register(ds, "parent", "th_basic:calls_child")
    done = ds.wait(ds.start("parent", '{"target": "missing-fn"}'), 30)
    assert done.status == "FAILED"
    failed = next(e for e in ds.history(done.arn) if e["EventType"] == "ChainedInvokeFailed")
    assert failed["ChainedInvokeFailedDetails"]["Error"]["Payload"]["ErrorType"] == "ResourceNotFoundException"


def test_handler_output_is_captured_per_invocation_and_operation(ds: Durascope) -> None:
    register(ds, "logs", "th_basic:logs_things")
    arn = ds.start("logs", "{}")
    assert ds.wait(arn, 15).status == "SUCCEEDED"
    lines = execution_logs(ds.db, arn)
    by_message = {e.message: e for e in lines}
    assert by_message["printed line"].level == "STDOUT"
    assert by_message["plain logging line"].level == "INFO"
    assert "context logger line" in by_message
    step_line = by_message["step logger line <b>markup</b>"]
    assert step_line.level == "WARNING" and step_line.op_id is not None
    step_id = next(e["Id"] for e in ds.history(arn) if e["EventType"] == "StepStarted")
    assert step_line.op_id == step_id
    request_ids = {
        e["InvocationCompletedDetails"]["RequestId"] for e in ds.history(arn) if e["EventType"] == "InvocationCompleted"
    }
    assert {e.request_id for e in lines} <= request_ids
    assert [e.message for e in execution_logs(ds.db, arn, "WARNING")] == ["step logger line <b>markup</b>"]


def test_overdue_timers_fire_at_once_after_a_restart(database_url: str) -> None:
    first = Durascope.open(database_url)
    register(first, "waits", "th_basic:waits")
    arn = first.start("waits", '{"seconds": 2}')
    suspended(first, arn)
    first.close()  # the engine is gone while the wait is due
    time.sleep(2.5)  # deliberately let the timer become overdue while no engine runs
    second = Durascope.open(database_url)
    try:
        t0 = time.monotonic()
        assert second.wait(arn, 10).status == "SUCCEEDED"
        assert time.monotonic() - t0 < 2.0
    finally:
        second.close()


def test_pause_and_resume_a_suspended_execution(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval", execution_timeout=2)
    arn = ds.start("approval", "{}")
    cid = callback_id(ds, arn)
    suspended(ds, arn)
    ds.pause(arn, reason="maintenance window")
    described = ds.get_execution(arn)
    assert described["Status"] == "PAUSED"
    assert described["PauseDetails"]["Reason"] == "maintenance window"
    assert described["PauseDetails"]["ExecutionTimeoutPaused"] is True
    ds.pause(arn)  # pausing again changes nothing
    # Callbacks still complete while paused, but nothing is invoked.
    ds.callback_success(cid, b'"ok"')
    time.sleep(2.5)  # longer than the execution timeout: a paused execution does not time out
    assert ds.describe(arn).status == "PAUSED"
    assert types(ds.history(arn))[-2:] == ["ExecutionPaused", "CallbackSucceeded"]
    ds.resume(arn, reason="done")
    assert ds.wait(arn, 15).status == "SUCCEEDED"
    h = ds.history(arn)
    resumed = next(e for e in h if e["EventType"] == "ExecutionResumed")
    assert resumed["ExecutionResumedDetails"]["Reason"] == {"Payload": "done", "Truncated": False}
    with pytest.raises(Exception, match="only running executions pause"):
        ds.pause(arn)


def test_paused_time_does_not_count_against_the_timeout_cap(ds: Durascope) -> None:
    register(ds, "approval", "th_basic:approval", execution_timeout=2)
    arn = ds.start("approval", "{}")
    callback_id(ds, arn)
    suspended(ds, arn)
    ds.pause(arn)
    time.sleep(1)
    ds.resume(arn)
    # The timeout still fires: the pause only extended it by the paused time.
    assert ds.wait(arn, 15).status == "TIMED_OUT"


def test_delete_only_closed_executions(ds: Durascope) -> None:
    from recorder.errors import ResourceConflictException

    register(ds, "approval", "th_basic:approval")
    arn = ds.start("approval", "{}")
    callback_id(ds, arn)
    with pytest.raises(ResourceConflictException):
        ds.delete(arn)
    ds.stop(arn)
    ds.delete(arn)
    with pytest.raises(ResourceNotFoundException):
        ds.describe(arn)


def test_pause_during_an_invocation_takes_effect_when_it_returns(ds: Durascope, tmp_path) -> None:
    register(ds, "gated", "th_basic:gated")
    gate = tmp_path / "gate"
    arn = ds.start("gated", f'{{"gate": "{gate}"}}')
    ds.wait_for(lambda: "StepStarted" in types(ds.history(arn)), 15, "gate step not started")
    ds.pause(arn, reason="hold")
    assert ds.get_execution(arn)["Status"] == "PAUSING"
    gate.touch()
    ds.wait_for(lambda: ds.describe(arn).status == "PAUSED", 15, "pause did not take effect")
    h = types(ds.history(arn))
    # The gate step's result was applied (answered without a token), then the pause took effect.
    assert h[-3:] == ["StepSucceeded", "InvocationCompleted", "ExecutionPaused"]
    ds.resume(arn)
    done = ds.wait(arn, 15)
    assert done.status == "SUCCEEDED" and done.result == '["opened", "after"]'


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_engine_closed_right_after_it_opened_stops_cleanly(database_url: str) -> None:
    # Its first wake-up runs at once; a scheduler job removed while the scheduler shut
    # down raised JobLookupError in APScheduler's thread.
    for _ in range(10):
        Durascope.open(database_url).close()
