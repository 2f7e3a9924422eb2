"""One execution: its facts, invocations against suspended time, every operation with its
attempts (and the tracebacks their invocations logged), what it waits on, and for an
execution that failed, the failing operation in one place."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from recorder.api import Durascope
from recorder.queries import TERMINAL, execution_detail, execution_logs, execution_origin, find_execution
from recorder.store.vocabulary import OPEN_OPERATION, UNSUCCESSFUL_EXECUTION
from viewer.operation_logs import Line, LoggedTrace, execution_trace, operation_traces, own_lines, split_records
from viewer.values import Value, decode_full
from viewer.view_models.common import ErrorInfo, ViewError, now_ms
from viewer.view_models.history_walk import WALK_DETAILS, Attempt, Invocation, Walk, walk_history

# The operations tree renders at most this many nodes; the event table has the rest.
MAX_TREE_OPS = 500
# Invocations whose logs are read for tracebacks: the failures the page shows first.
MAX_TRACE_INVOCATIONS = 50
MAX_FAILURE_LINES = 40
FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT"})
# What each kind of operation is called on the page (the SDK's subtypes, in its words).
KINDS = {
    "Step": "step",
    "Wait": "wait",
    "Callback": "callback",
    "Map": "map",
    "MapIteration": "iteration",
    "Parallel": "parallel",
    "ParallelBranch": "branch",
    "WaitForCallback": "wait for callback",
    "WaitForCondition": "wait for condition",
    "RunInChildContext": "child context",
    "ChainedInvoke": "invoke",
}
# How an operation still open when its execution ended is shown, by the execution's status.
CLOSED_BY = {
    "STOPPED": "cancelled at stop",
    "TIMED_OUT": "cancelled at the execution timeout",
    "FAILED": "cancelled when the execution failed",
    "SUCCEEDED": "left open when the execution ended",
}


@dataclass(frozen=True)
class Gap:
    """Suspended time between two invocations (or after the last one: while running, or
    until the execution ended)."""

    start_ms: int
    end_ms: int
    reasons: tuple[str, ...]
    open: bool  # still suspended now

    @property
    def label(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "suspended"


@dataclass(frozen=True, kw_only=True)
class OperationView:
    """An operation. ``end_ms`` of one still open when the execution ended is the
    execution's end, and ``closed_by`` says so; ``status`` stays what the history says."""

    id: str
    parent_id: str | None
    depth: int
    name: str | None
    type: str
    sub_type: str | None
    status: str
    start_ms: int
    end_ms: int | None
    attempts: tuple[Attempt, ...] = ()
    input: Value | None = None
    result: Value | None = None
    error: ErrorInfo | None = None
    details: dict[str, Any] = field(default_factory=dict)
    child_count: int = 0
    closed_by: str | None = None

    @property
    def label(self) -> str:
        return self.name or (self.sub_type or self.type).lower()

    @property
    def shown_status(self) -> str:
        return "CANCELLED" if self.closed_by else self.status

    @functools.cached_property
    def failed(self) -> bool:
        # Cached: the timeline, the graph and the list ask it of every operation.
        return self.status in FAILED_STATUSES or any(a.failed for a in self.attempts)

    @property
    def kind(self) -> str:
        """What the operation is, in the SDK's words: step, wait, callback, map, ..."""
        return KINDS.get(self.sub_type or "", (self.sub_type or self.type).lower().replace("_", " "))

    @property
    def callback_id(self) -> str | None:
        return self.details.get("CallbackId")

    @property
    def chained_arn(self) -> str | None:
        return self.details.get("DurableExecutionArn")


@dataclass(frozen=True)
class WaitingItem:
    kind: str  # wait, callback, retry, chained-invoke, execution-timeout
    label: str
    op_id: str | None
    due_ms: int | None
    callback_id: str | None = None
    heartbeat_due_ms: int | None = None
    chained_arn: str | None = None


@dataclass(frozen=True)
class PendingCallback:
    callback_id: str
    op_id: str
    name: str | None
    started_ms: int
    timeout_due_ms: int | None
    heartbeat_due_ms: int | None


@dataclass(frozen=True)
class LogLineView:
    line_id: int
    ts_ms: int
    level: str
    message: str
    invocation: int | None


@dataclass(frozen=True)
class Failure:
    """Why a closed execution did not succeed, in one place: the operation that failed
    (``op_id``, with the path of its parents), its error, the traceback its invocation
    logged, its own log lines; or, when no operation failed (a stop, a timeout, a handler
    that raised outside any step), the execution's error and what was still open."""

    status: str
    op_id: str | None
    path: tuple[tuple[str, str], ...]  # (op id, label) from the top down to the failing operation
    error: ErrorInfo | None
    trace: LoggedTrace | None
    invocation: int | None
    lines: tuple[LogLineView, ...]
    more_lines: int
    open_ops: tuple[str, ...]  # ids of operations cancelled by the execution's end


@dataclass(frozen=True, kw_only=True)
class ExecutionView:
    arn: str
    name: str
    function: str
    version: str
    status: str
    input: Value | None
    result: Value | None
    error: ErrorInfo | None
    start_ms: int
    end_ms: int | None
    duration_ms: int
    active_ms: int
    suspended_ms: int
    event_count: int
    invocations: tuple[Invocation, ...]
    gaps: tuple[Gap, ...]
    operations: tuple[OperationView, ...]
    first_failure_op: str | None
    first_failure_event: int | None
    waiting_on: tuple[WaitingItem, ...]
    callbacks: tuple[PendingCallback, ...]
    parent_arn: str | None
    now_ms: int
    failure: Failure | None = None
    imported: bool = False
    origin: str | None = None  # where an imported execution came from
    last_event_id: int = 0

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def tree(self, limit: int = MAX_TREE_OPS) -> tuple[tuple[OperationView, ...], int]:
        """Operations for the tree (the first ``limit`` in tree order) and how many were left out."""
        return self.operations[:limit], max(0, len(self.operations) - limit)

    def operation(self, op_id: str | None) -> OperationView | None:
        return next((o for o in self.operations if o.id == op_id), None)


def _tree_order(ops: list[Any]) -> list[tuple[Any, int, int]]:
    """(operation, depth, child count) in depth-first order, children in start order."""
    ids = {o.op_id for o in ops}
    children: dict[str | None, list[Any]] = {}
    for o in ops:
        if o.type == "EXECUTION":
            continue
        parent = o.parent_id if o.parent_id in ids else None
        children.setdefault(parent, []).append(o)
    out: list[tuple[Any, int, int]] = []
    stack = [(o, 0) for o in reversed(children.get(None, []))]
    while stack:
        o, depth = stack.pop()
        kids = children.get(o.op_id, [])
        out.append((o, depth, len(kids)))
        stack.extend((k, depth + 1) for k in reversed(kids))
    return out


def _active_ms(invocations: list[Invocation]) -> int:
    # Invocations never overlap in one execution, but clip anyway so a clock step cannot
    # make active time exceed the wall-clock duration.
    total, last_end = 0, None
    for inv in sorted(invocations, key=lambda i: i.start_ms):
        start = max(inv.start_ms, last_end) if last_end is not None else inv.start_ms
        if inv.end_ms > start:
            total += inv.end_ms - start
        last_end = max(last_end or inv.end_ms, inv.end_ms)
    return total


def _gaps(walk: Walk, e: Any, now: int) -> list[Gap]:
    gaps: list[Gap] = []
    invs = walk.invocations
    for i, inv in enumerate(invs):
        nxt = invs[i + 1].start_ms if i + 1 < len(invs) else None
        if nxt is not None and nxt > inv.end_ms:
            gaps.append(Gap(inv.end_ms, nxt, walk.after_each[i], False))
        elif nxt is None and e.end_ms is None and now > inv.end_ms:
            gaps.append(Gap(inv.end_ms, now, tuple(walk.pending.values()) or walk.after_each[i], True))
        elif nxt is None and e.end_ms is not None and e.end_ms > inv.end_ms and walk.after_each[i]:
            # Stopped or timed out while suspended: it waited until the end.
            gaps.append(Gap(inv.end_ms, e.end_ms, walk.after_each[i], False))
    return gaps


class _Logs:
    """The captured lines of the invocations whose failures the page explains, read once."""

    def __init__(self, ds: Durascope, arn: str, walk: Walk, status: str) -> None:
        wanted: list[str] = []
        for attempts in walk.attempts.values():
            for a in attempts:
                if a.failed and a.invocation is not None:
                    rid = walk.invocations[a.invocation - 1].request_id
                    if rid and rid not in wanted:
                        wanted.append(rid)
        last = walk.invocations[-1].request_id if walk.invocations else None
        self.last_request = last
        if status == "FAILED" and last and last not in wanted:
            wanted.append(last)
        wanted = wanted[:MAX_TRACE_INVOCATIONS]
        self.lines: list[Line] = split_records(execution_logs(ds.db, arn, request_ids=tuple(wanted))) if wanted else []
        self.traces = operation_traces(self.lines)

    def attach(self, op_id: str, attempts: list[Attempt], invocations: list[Invocation]) -> list[Attempt]:
        """Each failed attempt with the traceback its invocation logged for it (the k-th
        failure of the operation in an invocation gets the k-th traceback logged there)."""
        if not self.traces:
            return attempts
        used: dict[str, int] = {}
        out = []
        for a in attempts:
            rid = invocations[a.invocation - 1].request_id if a.failed and a.invocation else None
            found = self.traces.get((rid, op_id)) if rid else None
            if found:
                k = used.get(rid or "", 0)
                used[rid or ""] = k + 1
                if k < len(found):
                    a = replace(a, trace=found[k])
            out.append(a)
        return out


def _op_view(
    o: Any, depth: int, n_children: int, attempts: tuple[Attempt, ...], e: Any, inputs: dict[str, str]
) -> OperationView:
    details = json.loads(o.details_json) if o.details_json else {}
    end, closed_by = o.end_ms, None
    if e.end_ms is not None and o.end_ms is None and o.status in OPEN_OPERATION:
        end, closed_by = e.end_ms, CLOSED_BY.get(e.status, "left open when the execution ended")
        attempts = tuple(
            replace(a, end_ms=e.end_ms, outcome="cancelled") if a.outcome == "running" else a for a in attempts
        )
    return OperationView(
        id=o.op_id,
        parent_id=o.parent_id,
        depth=depth,
        name=o.name,
        type=o.type,
        sub_type=o.sub_type,
        status=o.status,
        start_ms=o.start_ms,
        end_ms=end,
        attempts=attempts,
        input=Value.of(inputs.get(o.op_id)),
        result=Value.of(o.result),
        error=ErrorInfo.of(o.error_json),
        details=details if isinstance(details, dict) else {},
        child_count=n_children,
        closed_by=closed_by,
    )


def build_execution(ds: Durascope, arn: str) -> ExecutionView:
    d = execution_detail(ds.db, arn, WALK_DETAILS)
    e, now = d.execution, now_ms()
    names = {o.op_id: o.name for o in d.operations}
    walk = walk_history(d.events, names)
    end = e.end_ms if e.end_ms is not None else now
    duration = max(0, end - e.start_ms)
    active = min(_active_ms(walk.invocations), duration)
    logs = _Logs(ds, arn, walk, e.status)

    ops: list[OperationView] = []
    first_failure: tuple[int, str] | None = None
    for o, depth, n_children in _tree_order(d.operations):
        attempts = logs.attach(
            o.op_id, sorted(walk.attempts.get(o.op_id, ()), key=lambda a: a.number), walk.invocations
        )
        view = _op_view(o, depth, n_children, tuple(attempts), e, walk.inputs)
        ops.append(view)
        failed_at = [a.event_id or 0 for a in view.attempts if a.failed]
        if view.status in FAILED_STATUSES and not failed_at and n_children == 0:
            failed_at = [0]
        if failed_at and (first_failure is None or min(failed_at) < first_failure[0]):
            first_failure = (min(failed_at), o.op_id)
    first_event = next((ev.event_id for ev in d.events if ev.type.endswith(("Failed", "TimedOut"))), None)

    callbacks, waiting = _waiting_on(d, names)
    error = ErrorInfo.of(e.error_json)
    return ExecutionView(
        arn=e.arn,
        name=e.name,
        function=e.function_name,
        version=e.function_version,
        status=e.status,
        input=Value.of(e.input_payload),
        result=Value.of(e.result) if e.status == "SUCCEEDED" else None,
        error=error,
        start_ms=e.start_ms,
        end_ms=e.end_ms,
        duration_ms=duration,
        active_ms=active,
        suspended_ms=max(0, duration - active),
        event_count=len(d.events),
        invocations=tuple(walk.invocations),
        gaps=tuple(_gaps(walk, e, now)),
        operations=tuple(ops),
        first_failure_op=first_failure[1] if first_failure else None,
        first_failure_event=first_event,
        waiting_on=waiting,
        callbacks=callbacks,
        parent_arn=e.parent_arn,
        now_ms=now,
        failure=_failure(e, error, ops, walk, logs),
        imported=bool(e.imported),
        origin=execution_origin(ds.db, e.execution_id) if e.imported else None,
        last_event_id=e.last_event_id,
    )


def _failing_op(ops: list[OperationView]) -> OperationView | None:
    """The operation whose failure ended the execution: the failed operation with no failed
    operation below it that ended last (a map's failed item, not the map)."""
    failed = [o for o in ops if o.status in FAILED_STATUSES]
    parents = {o.parent_id for o in failed}
    leaves = [o for o in failed if o.id not in parents]
    return max(leaves, key=lambda o: (o.end_ms or 0, o.start_ms), default=None)


def _path(ops: list[OperationView], op: OperationView) -> tuple[tuple[str, str], ...]:
    by_id = {o.id: o for o in ops}
    path, cur = [], op
    while cur is not None:
        path.append((cur.id, cur.label))
        cur = by_id.get(cur.parent_id or "")
    return tuple(reversed(path))


def _failure(e: Any, error: ErrorInfo | None, ops: list[OperationView], walk: Walk, logs: _Logs) -> Failure | None:
    if e.status not in UNSUCCESSFUL_EXECUTION:
        return None
    open_ops = tuple(o.id for o in ops if o.closed_by)
    op = _failing_op(ops) if e.status == "FAILED" else None
    by_request = {i.request_id: i.index for i in walk.invocations if i.request_id}
    if op is None:
        trace = execution_trace(logs.lines, logs.last_request) if e.status == "FAILED" else None
        return Failure(
            e.status, None, (), error, trace, by_request.get(trace.request_id) if trace else None, (), 0, open_ops
        )
    last = next((a for a in reversed(op.attempts) if a.failed), None)
    trace = last.trace if last else None
    if trace is None and e.status == "FAILED":
        trace = execution_trace(logs.lines, logs.last_request)
    mine = own_lines(logs.lines, op.id)
    lines = tuple(
        LogLineView(ln.line_id, ln.ts_ms, ln.level, ln.text, by_request.get(ln.request_id))
        for ln in mine[:MAX_FAILURE_LINES]
    )
    invocation = last.invocation if last else (by_request.get(trace.request_id) if trace else None)
    return Failure(
        e.status,
        op.id,
        _path(ops, op),
        op.error or (last.error if last else None) or error,
        trace,
        invocation,
        lines,
        max(0, len(mine) - MAX_FAILURE_LINES),
        open_ops,
    )


def _waiting_on(d: Any, names: dict[str, str]) -> tuple[tuple[PendingCallback, ...], tuple[WaitingItem, ...]]:
    """What a suspended execution waits for: its timers, open callbacks, pending retries
    and running chained executions."""
    e = d.execution
    if e.status in TERMINAL:
        return (), ()
    timers = {(t.kind, t.op_id): t.due_ms for t in d.timers}
    callbacks: list[PendingCallback] = []
    items: list[WaitingItem] = []
    for c in d.callbacks:
        if c.status != "STARTED":
            continue
        hb = timers.get(("callback-heartbeat", c.op_id))
        timeout = timers.get(("callback-timeout", c.op_id))
        callbacks.append(PendingCallback(c.callback_id, c.op_id, names.get(c.op_id), c.started_ms, timeout, hb))
        items.append(
            WaitingItem("callback", f"callback '{names.get(c.op_id) or c.op_id}'", c.op_id, timeout, c.callback_id, hb)
        )
    for o in d.operations:
        if o.type == "WAIT" and o.status == "STARTED":
            items.append(WaitingItem("wait", f"wait '{o.name or o.op_id}'", o.op_id, timers.get(("wait", o.op_id))))
        elif o.type == "STEP" and o.status == "PENDING":
            due = timers.get(("retry", o.op_id)) or o.next_attempt_ms
            items.append(
                WaitingItem("retry", f"retry of step '{o.name or o.op_id}' (attempt {o.attempt + 1})", o.op_id, due)
            )
        elif o.type == "CHAINED_INVOKE" and o.status == "STARTED":
            details = json.loads(o.details_json) if o.details_json else {}
            target = details.get("DurableExecutionArn") if isinstance(details, dict) else None
            items.append(
                WaitingItem(
                    "chained-invoke", f"chained execution '{o.name or o.op_id}'", o.op_id, None, chained_arn=target
                )
            )
    if ("execution-timeout", "") in timers:
        items.append(WaitingItem("execution-timeout", "execution timeout", None, timers[("execution-timeout", "")]))
    return tuple(callbacks), tuple(items)


PAYLOAD_KINDS = ("input", "result", "op-result", "op-input")


def full_payload(ds: Durascope, arn: str, kind: str, op_id: str | None = None, raw: bool = False) -> str:
    """The whole text behind a cut payload (input, result, an operation's result or input),
    decoded from the SDK's encoding unless ``raw``."""
    if kind not in PAYLOAD_KINDS:
        raise ViewError(f"kind must be one of {', '.join(PAYLOAD_KINDS)}")
    d = execution_detail(
        ds.db,
        arn,
        ("ChainedInvokeStarted",) if kind == "op-input" else (),
        only_types=("ChainedInvokeStarted",) if kind == "op-input" else (),
    )
    if kind == "input":
        text = d.execution.input_payload
    elif kind == "result":
        text = d.execution.result
    else:
        op = next((o for o in d.operations if o.op_id == op_id), None)
        if op is None:
            raise ViewError(f"No operation {str(op_id)[:80]!r} in this execution", 404)
        text = op.result if kind == "op-result" else walk_history(d.events, {}).inputs.get(op.op_id)
    if text is None:
        raise ViewError("This execution has no such payload", 404)
    return text if raw else decode_full(text)


@dataclass(frozen=True)
class OperationDetail:
    """One operation on its own (what a click on the graph opens): the operation, its
    children, and its own log lines."""

    arn: str
    execution_name: str
    execution_status: str
    now_ms: int
    op: OperationView
    path: tuple[tuple[str, str], ...]
    children: tuple[tuple[str, str, str], ...]  # (id, label, shown status)
    lines: tuple[LogLineView, ...]
    more_lines: int


def detail_of(view: ExecutionView, op: OperationView, lines: tuple[LogLineView, ...], more: int) -> OperationDetail:
    children = tuple((o.id, o.label, o.shown_status) for o in view.operations if o.parent_id == op.id)
    return OperationDetail(
        view.arn, view.name, view.status, view.now_ms, op, _path(list(view.operations), op), children, lines, more
    )


def build_operation(ds: Durascope, arn: str, op_id: str) -> OperationDetail:
    view = build_execution(ds, arn)
    op = view.operation(op_id)
    if op is None:
        raise ViewError(f"No operation {op_id[:80]!r} in this execution", 404)
    by_request = {i.request_id: i.index for i in view.invocations if i.request_id}
    mine = own_lines(split_records(execution_logs(ds.db, arn)), op_id)
    lines = tuple(
        LogLineView(ln.line_id, ln.ts_ms, ln.level, ln.text, by_request.get(ln.request_id))
        for ln in mine[:MAX_FAILURE_LINES]
    )
    return detail_of(view, op, lines, max(0, len(mine) - MAX_FAILURE_LINES))


@dataclass(frozen=True)
class ExecutionHead:
    """What a page following an execution watches: its status and its last event."""

    status: str
    last_event_id: int
    done: bool


def build_head(ds: Durascope, arn: str) -> ExecutionHead:
    with ds.db.read() as s:
        e = find_execution(s, arn)
        return ExecutionHead(e.status, e.last_event_id, e.status in TERMINAL)
