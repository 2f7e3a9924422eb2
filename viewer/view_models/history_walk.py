"""One pass over an execution's history: its invocations, what it waited for between
them, and every step attempt with the invocation it ran in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from recorder.queries import TimelineEvent
from viewer.operation_logs import LoggedTrace
from viewer.view_models.common import ErrorInfo

# The event types whose name and details the walk reads; the store sends only their bodies.
WALK_DETAILS = (
    "InvocationCompleted",
    "WaitStarted",
    "CallbackStarted",
    "ChainedInvokeStarted",
    "StepSucceeded",
    "StepFailed",
)

_CLOSES = frozenset(
    {
        "WaitSucceeded",
        "WaitCancelled",
        "CallbackSucceeded",
        "CallbackFailed",
        "CallbackTimedOut",
        "StepSucceeded",
        "StepStarted",
        "ChainedInvokeSucceeded",
        "ChainedInvokeFailed",
        "ChainedInvokeTimedOut",
        "ChainedInvokeStopped",
    }
)


@dataclass(frozen=True)
class Invocation:
    index: int  # 1-based
    start_ms: int
    end_ms: int
    request_id: str | None
    event_id: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Attempt:
    """One run of a step. ``invocation`` is the 1-based index of the invocation it ran in
    (None while that invocation is still running); ``outcome`` is succeeded, failed,
    retrying (failed, another attempt follows), running, or cancelled (still running when
    the execution ended). ``trace`` is the traceback its invocation logged for it."""

    number: int
    start_ms: int
    end_ms: int | None
    outcome: str
    error: ErrorInfo | None
    retry_delay_s: int | None
    event_id: int | None
    invocation: int | None = None
    trace: LoggedTrace | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "retrying")


@dataclass
class Walk:
    invocations: list[Invocation] = field(default_factory=list)
    after_each: list[tuple[str, ...]] = field(default_factory=list)  # pending after each invocation
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # op -> why the execution waits for it now
    inputs: dict[str, str] = field(default_factory=dict)  # op -> the payload a chained invoke was given


def _label(name: str | None, op: str | None, names: dict[str, str]) -> str:
    return name or names.get(op or "", "")


def _fmt_instant(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S UTC")


def walk_history(events: list[TimelineEvent], names: dict[str, str]) -> Walk:
    """Invocations, what was pending after each one (the labels of the suspended gaps),
    every step attempt (with its invocation), and what is pending now."""
    w = Walk()
    open_attempt: dict[str, tuple[int, int, int]] = {}  # op -> (number, start, event id)
    for e in events:
        kind, op, ts = e.type, e.op_id, e.ts_ms
        name, d = e.read()
        if kind == "InvocationCompleted":
            index = len(w.invocations) + 1
            w.invocations.append(
                Invocation(
                    index,
                    int(d.get("StartTimestamp") or ts),
                    int(d.get("EndTimestamp") or ts),
                    d.get("RequestId"),
                    e.event_id,
                )
            )
            w.after_each.append(tuple(w.pending.values()))
            continue
        if op and kind in _CLOSES:
            w.pending.pop(op, None)
        if kind == "StepStarted":
            n = len(w.attempts.get(op or "", [])) + 1
            open_attempt[op or ""] = (n, ts, e.event_id)
        elif kind in ("StepSucceeded", "StepFailed") and op:
            retry = d.get("RetryDetails") or {}
            number, start, _ = open_attempt.pop(op, (len(w.attempts.get(op, [])) + 1, ts, e.event_id))
            number = int(retry.get("CurrentAttempt") or number)
            delay = retry.get("NextAttemptDelaySeconds")
            outcome = "succeeded" if kind == "StepSucceeded" else ("retrying" if delay is not None else "failed")
            # An attempt is checkpointed by the invocation running it: the next to complete.
            w.attempts.setdefault(op, []).append(
                Attempt(
                    number, start, ts, outcome, ErrorInfo.of(d.get("Error")), delay, e.event_id, len(w.invocations) + 1
                )
            )
            if delay is not None:
                w.pending[op] = f"retry of step '{_label(name, op, names)}' after {delay}s"
        elif kind == "WaitStarted":
            due = d.get("ScheduledEndTimestamp")
            w.pending[op or ""] = f"wait '{_label(name, op, names)}'" + (
                f" until {_fmt_instant(int(due))}" if due else ""
            )
        elif kind == "CallbackStarted":
            w.pending[op or ""] = f"callback '{_label(name, op, names)}'"
        elif kind == "ChainedInvokeStarted":
            w.pending[op or ""] = f"chained execution '{_label(name, op, names)}'"
            given = (d.get("Input") or {}).get("Payload")
            if op and isinstance(given, str):
                w.inputs[op] = given
    for op, (number, start, event_id) in open_attempt.items():
        w.attempts.setdefault(op, []).append(Attempt(number, start, None, "running", None, None, event_id))
    # Attempts of an invocation still running belong to no completed invocation yet.
    last = len(w.invocations)
    for attempts in w.attempts.values():
        for i, a in enumerate(attempts):
            if a.invocation is not None and a.invocation > last:
                attempts[i] = replace(a, invocation=None)
    return w
