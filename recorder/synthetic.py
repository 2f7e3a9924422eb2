"""Synthetic finished histories in the AWS format, for loading the viewer with large
executions without running them (bench/viewer_bench.py, the viewer's tests): the engine
would take hours to produce 100,000 executions on this machine kind. ``transfer``'s import
path loads them as ordinary rows.
"""

from __future__ import annotations

import uuid

T0 = 1_790_000_000.0


def synthetic(function: str, n_events: int, t0: float) -> dict:
    """A finished execution of ~n_events: steps (some retried) and an invocation every 50 steps."""
    eid = str(uuid.uuid4())
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST/durable-execution/{eid}/{eid}"
    events = [{"EventType": "ExecutionStarted", "EventId": 1, "Id": eid, "Name": eid, "EventTimestamp": t0,
               "ExecutionStartedDetails": {"Input": {"Payload": '{"n": 1}', "Truncated": False}, "ExecutionTimeout": 3600}}]
    t, step, inv_start = t0, 0, t0
    while len(events) < n_events - 2:
        op = f"{step:064x}"
        t += 0.002
        events.append({"EventType": "StepStarted", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": f"step-{step}", "EventTimestamp": t, "StepStartedDetails": {}})
        t += 0.003
        if step % 7 == 3:
            events.append({"EventType": "StepFailed", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                           "Name": f"step-{step}", "EventTimestamp": t, "StepFailedDetails": {
                               "Error": {"Payload": {"ErrorType": "ValueError", "ErrorMessage": "flaky"}, "Truncated": False},
                               "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 1}}})
            t += 1.0
            events.append({"EventType": "StepStarted", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                           "Name": f"step-{step}", "EventTimestamp": t, "StepStartedDetails": {}})
        events.append({"EventType": "StepSucceeded", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": f"step-{step}", "EventTimestamp": t, "StepSucceededDetails": {
                           "Result": {"Payload": str(step), "Truncated": False}, "RetryDetails": {"CurrentAttempt": 1}}})
        step += 1
        if step % 50 == 0:
            events.append({"EventType": "InvocationCompleted", "EventId": len(events) + 1, "EventTimestamp": t,
                           "InvocationCompletedDetails": {"StartTimestamp": inv_start, "EndTimestamp": t,
                                                          "RequestId": str(uuid.uuid4())}})
            t += 0.5
            inv_start = t
    events.append({"EventType": "InvocationCompleted", "EventId": len(events) + 1, "EventTimestamp": t,
                   "InvocationCompletedDetails": {"StartTimestamp": inv_start, "EndTimestamp": t, "RequestId": "last"}})
    events.append({"EventType": "ExecutionSucceeded", "EventId": len(events) + 1, "Id": eid, "Name": eid,
                   "EventTimestamp": t, "ExecutionSucceededDetails": {"Result": {"Payload": str(step), "Truncated": False}}})
    return {"DurableExecutionArn": arn, "Events": events}


def synthetic_failure(function: str, t0: float, error_type: str, message: str, step: str = "charge",
                      attempts: int = 2) -> dict:
    """A failed execution: step ``step`` fails ``attempts`` times with ``message`` (retried
    in between), then the execution fails with the same error."""
    eid = str(uuid.uuid4())
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST/durable-execution/{eid}/{eid}"
    error = {"Payload": {"ErrorType": error_type, "ErrorMessage": message,
                         "StackTrace": [f'  File "handler.py", line 12, in {step}']}, "Truncated": False}
    op = f"{1:064x}"
    events: list[dict] = [{"EventType": "ExecutionStarted", "EventId": 1, "Id": eid, "Name": eid,
                           "EventTimestamp": t0, "ExecutionStartedDetails": {
                               "Input": {"Payload": '{"n": 1}', "Truncated": False}, "ExecutionTimeout": 3600}}]
    t = t0
    for attempt in range(1, attempts + 1):
        t += 0.002
        events.append({"EventType": "StepStarted", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": step, "EventTimestamp": t, "StepStartedDetails": {}})
        t += 0.003
        retry: dict = {"CurrentAttempt": attempt}
        if attempt < attempts:
            retry["NextAttemptDelaySeconds"] = 1
        events.append({"EventType": "StepFailed", "SubType": "Step", "EventId": len(events) + 1, "Id": op,
                       "Name": step, "EventTimestamp": t, "StepFailedDetails": {"Error": error,
                                                                                "RetryDetails": retry}})
        t += 1.0 if attempt < attempts else 0.0
    events.append({"EventType": "InvocationCompleted", "EventId": len(events) + 1, "EventTimestamp": t,
                   "InvocationCompletedDetails": {"StartTimestamp": t0, "EndTimestamp": t, "RequestId": "last"}})
    events.append({"EventType": "ExecutionFailed", "EventId": len(events) + 1, "Id": eid, "Name": eid,
                   "EventTimestamp": t, "ExecutionFailedDetails": {"Error": error}})
    return {"DurableExecutionArn": arn, "Events": events}
