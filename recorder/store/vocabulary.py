"""The store's vocabulary: the names of states, types and kinds, each set defined once.

Every enum is a ``StrEnum``: its members are the strings the database, the wire and the
history hold, so they compare equal to what is read back and are written as they are.
The SDK's ``OperationSubType`` is already a ``StrEnum`` and is used as it is; its
``OperationType`` and ``OperationStatus`` are plain enums, so the store names its own.
"""

from __future__ import annotations

from enum import StrEnum

from aws_durable_execution_sdk_python.lambda_service import OperationSubType

__all__ = [
    "DAY_MS",
    "OPEN_EXECUTION",
    "OPEN_OPERATION",
    "TERMINAL_EXECUTION",
    "TERMINAL_OPERATION",
    "CallbackStatus",
    "EventType",
    "ExecutionStatus",
    "OperationStatus",
    "OperationSubType",
    "OperationType",
    "TimerKind",
]

DAY_MS = 86_400_000


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"  # a pause waits for the running invocation to end
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


OPEN_EXECUTION = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.PAUSING, ExecutionStatus.PAUSED})
TERMINAL_EXECUTION = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.STOPPED}
)
# Ended without success: counted as failures by the statistics, explained on the page.
UNSUCCESSFUL_EXECUTION = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.STOPPED})
# The statuses Lambda's API lists and filters on, and notifies changes to (PAUSING and
# PAUSED are this engine's own), in the order users read them.
LISTED_EXECUTION = (
    ExecutionStatus.RUNNING,
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.STOPPED,
)


class OperationType(StrEnum):
    EXECUTION = "EXECUTION"
    CONTEXT = "CONTEXT"
    STEP = "STEP"
    WAIT = "WAIT"
    CALLBACK = "CALLBACK"
    CHAINED_INVOKE = "CHAINED_INVOKE"


class OperationStatus(StrEnum):
    STARTED = "STARTED"
    PENDING = "PENDING"  # a step waiting for its next attempt
    READY = "READY"  # a step whose next attempt is due
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


OPEN_OPERATION = frozenset({OperationStatus.STARTED, OperationStatus.PENDING, OperationStatus.READY})
TERMINAL_OPERATION = frozenset(
    {
        OperationStatus.SUCCEEDED,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.TIMED_OUT,
        OperationStatus.STOPPED,
    }
)


class CallbackStatus(StrEnum):
    """``callbacks.status``: RECEIVED is a result that waits for the running invocation to end."""

    STARTED = "STARTED"
    RECEIVED = "RECEIVED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"


class EventType(StrEnum):
    """History event types (GetDurableExecutionHistory), then the engine's own records."""

    EXECUTION_STARTED = "ExecutionStarted"
    EXECUTION_SUCCEEDED = "ExecutionSucceeded"
    EXECUTION_FAILED = "ExecutionFailed"
    EXECUTION_TIMED_OUT = "ExecutionTimedOut"
    EXECUTION_STOPPED = "ExecutionStopped"
    EXECUTION_PAUSED = "ExecutionPaused"
    EXECUTION_RESUMED = "ExecutionResumed"
    CONTEXT_STARTED = "ContextStarted"
    CONTEXT_SUCCEEDED = "ContextSucceeded"
    CONTEXT_FAILED = "ContextFailed"
    STEP_STARTED = "StepStarted"
    STEP_SUCCEEDED = "StepSucceeded"
    STEP_FAILED = "StepFailed"
    WAIT_STARTED = "WaitStarted"
    WAIT_SUCCEEDED = "WaitSucceeded"
    WAIT_CANCELLED = "WaitCancelled"
    CALLBACK_STARTED = "CallbackStarted"
    CALLBACK_SUCCEEDED = "CallbackSucceeded"
    CALLBACK_FAILED = "CallbackFailed"
    CALLBACK_TIMED_OUT = "CallbackTimedOut"
    CHAINED_INVOKE_STARTED = "ChainedInvokeStarted"
    CHAINED_INVOKE_SUCCEEDED = "ChainedInvokeSucceeded"
    CHAINED_INVOKE_FAILED = "ChainedInvokeFailed"
    CHAINED_INVOKE_TIMED_OUT = "ChainedInvokeTimedOut"
    CHAINED_INVOKE_STOPPED = "ChainedInvokeStopped"
    INVOCATION_COMPLETED = "InvocationCompleted"
    # Engine records: state changes AWS keeps out of the history (no EventId).
    INVOCATION_STARTED = "InvocationStarted"
    STEP_READY = "StepReady"
    CALLBACK_HEARTBEAT = "CallbackHeartbeat"
    # A pause that waits for the running invocation (status PAUSING), and a resume that
    # cancels such a pause before it took effect.
    PAUSE_REQUESTED = "PauseRequested"
    PAUSE_CANCELLED = "PauseCancelled"
    # A callback result that arrived while an invocation was running; it becomes the
    # CallbackSucceeded/CallbackFailed event once that invocation has ended.
    CALLBACK_RECEIVED = "CallbackResultReceived"


class TimerKind(StrEnum):
    """``timers.kind``: what a due timer does."""

    WAIT = "wait"  # a WAIT op's scheduled end
    RETRY = "retry"  # a STEP's next attempt (PENDING -> READY)
    CALLBACK_TIMEOUT = "callback-timeout"
    CALLBACK_HEARTBEAT_TIMEOUT = "callback-heartbeat"
    EXECUTION_TIMEOUT = "execution-timeout"
    PURGE = "purge"  # retention of a closed execution
