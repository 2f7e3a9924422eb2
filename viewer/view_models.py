"""The viewer's data, prepared in one place.

Every page and its ``/api/v1`` twin calls a ``build_*`` function here and gets a frozen
dataclass back; the HTML templates only render it and the JSON routes only ``to_dict`` it,
so the two can never disagree. Parsing of user input (query strings, cursors, dates) also
happens here, at the edge: bad input raises ``ViewError`` (a 400 on both sides).

All instants are epoch milliseconds (the store's unit); templates format them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recorder.api import Durascope
from recorder.queries import (
    LEVELS,
    LIST_STATUSES,
    TERMINAL,
    VIEW_SORTS,
    ExecutionQuery,
    TimelineEvent,
    browse_executions,
    execution_by_id,
    execution_detail,
    execution_facets,
    execution_logs,
    execution_sort_value,
    execution_status_counts,
    history_event_types,
    history_window,
)

STATUS_ORDER = ("RUNNING", "PAUSING", "PAUSED", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "DELETING")
PAGE_SIZES = (20, 50, 100, 200)
# Payloads longer than this are cut in the page; the full text is one click away.
PAYLOAD_PREVIEW_CHARS = 4000
EVENT_WINDOW = 200
# The operations tree renders at most this many nodes; the event table has the rest.
MAX_TREE_OPS = 500


class ViewError(Exception):
    """Bad input from the user (400) or something that is not there (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def format_duration(ms: int | None) -> str:
    """A duration as people read it (the list, the execution page, the Gantt hover)."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    if ms < 3_600_000:
        return f"{ms // 60_000} min {ms % 60_000 // 1000} s"
    if ms < 86_400_000:
        return f"{ms // 3_600_000} h {ms % 3_600_000 // 60_000} min"
    return f"{ms // 86_400_000} d {ms % 86_400_000 // 3_600_000} h"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- payloads and errors ----------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A JSON (or plain) text for display: pretty-printed when it parses, cut when large."""

    text: str
    is_json: bool
    size: int
    truncated: bool

    @classmethod
    def of(cls, raw: Any, limit: int = PAYLOAD_PREVIEW_CHARS) -> Payload | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            raw = json.dumps(raw)
        try:
            value = json.loads(raw)
        except ValueError:
            return cls(raw[:limit], False, len(raw), len(raw) > limit)
        text, cut = _pretty_head(value, limit)
        return cls(text, True, len(raw), cut)


_PRETTY = json.JSONEncoder(indent=2, ensure_ascii=False)
_COMPACT = json.JSONEncoder(ensure_ascii=False)


def _pretty_head(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` as indented JSON, cut at ``limit`` characters, and whether it was cut.

    Encoding stops at the cut, so a megabyte result costs what its preview shows. Scalars
    (most step results) go through the C encoder: indenting changes only containers."""
    if not isinstance(value, (dict, list)):
        text = _COMPACT.encode(value)
        return text[:limit], len(text) > limit
    parts, size = [], 0
    for chunk in _PRETTY.iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(parts)[:limit], True
    return "".join(parts), False


@dataclass(frozen=True)
class ErrorInfo:
    type: str | None
    message: str | None
    stack_trace: tuple[str, ...] = ()
    data: Payload | None = None

    @classmethod
    def of(cls, raw: Any) -> ErrorInfo | None:
        if not raw:
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return cls(None, raw)
        if isinstance(raw, dict) and "Payload" in raw and isinstance(raw["Payload"], dict):
            raw = raw["Payload"]  # history shape: {"Payload": {...}, "Truncated": ...}
        if not isinstance(raw, dict):
            return cls(None, str(raw))
        trace = raw.get("StackTrace") or ()
        return cls(raw.get("ErrorType"), raw.get("ErrorMessage"),
                   tuple(str(t) for t in trace) if isinstance(trace, list) else (str(trace),),
                   Payload.of(raw.get("ErrorData")))

    @property
    def summary(self) -> str:
        return ": ".join(p for p in (self.type, self.message) if p) or "error"


# --- executions list ----------------------------------------------------------------------


def _parse_instant(text: str, what: str, end_of_day: bool = False) -> int:
    """Epoch ms from ``2026-11-23``, ``2026-11-23T19:30[:ss]`` (UTC unless an offset is
    given) or raw epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            if end_of_day:
                d += dt.timedelta(days=1, milliseconds=-1)
        else:
            d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if d.tzinfo is None:
                d = d.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ViewError(f"{what}: {text[:40]!r} is not a date (use 2026-11-23 or 2026-11-23T19:30)") from None
    return int(d.timestamp() * 1000)


@dataclass(frozen=True)
class ListFilters:
    """The list's state, all of it in the URL query string."""

    functions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    q: str = ""
    started_from: str = ""
    started_to: str = ""
    error_type: str = ""
    sort: str = "start"
    order: str = "desc"
    limit: int = 50
    cursor: str = ""

    @classmethod
    def from_args(cls, args: Any) -> ListFilters:
        get_list = args.getlist if hasattr(args, "getlist") else (lambda k: [args[k]] if k in args else [])
        statuses = tuple(sorted({s.strip().upper() for v in get_list("status") for s in v.split(",") if s.strip()}))
        bad = [s for s in statuses if s not in LIST_STATUSES]
        if bad:
            raise ViewError(f"Unknown status {', '.join(bad)[:100]}; use one of {', '.join(STATUS_ORDER)}")
        functions = tuple(sorted({f.strip() for v in get_list("function") for f in v.split(",") if f.strip()}))
        sort = args.get("sort", "start") or "start"
        if sort not in VIEW_SORTS:
            raise ViewError(f"sort must be one of {', '.join(VIEW_SORTS)}")
        order = args.get("order", "desc") or "desc"
        if order not in ("asc", "desc"):
            raise ViewError("order must be asc or desc")
        try:
            limit = int(args.get("limit", 50) or 50)
        except ValueError:
            raise ViewError("limit must be a number") from None
        if not 1 <= limit <= 500:
            raise ViewError("limit must be from 1 to 500")
        f = cls(functions, statuses, (args.get("q") or "").strip()[:200], (args.get("from") or "").strip(),
                (args.get("to") or "").strip(), (args.get("error") or "").strip()[:200], sort, order, limit,
                (args.get("cursor") or "").strip())
        f.query()  # validates the dates now, so a bad one is a 400 before any work
        if f.cursor:
            f.after()
        return f

    def query(self) -> ExecutionQuery:
        start = _parse_instant(self.started_from, "from") if self.started_from else None
        end = _parse_instant(self.started_to, "to", end_of_day=True) if self.started_to else None
        if start is not None and end is not None and start > end:
            raise ViewError("from is after to")
        return ExecutionQuery(self.functions, self.statuses, self.q or None, start, end, self.error_type or None)

    def _fingerprint(self) -> str:
        # A cursor only makes sense for the filters and order it was issued for.
        parts = [self.functions, self.statuses, self.q, self.started_from, self.started_to, self.error_type,
                 self.sort, self.order]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]

    def make_cursor(self, key: int, execution_id: str) -> str:
        raw = json.dumps({"k": key, "i": execution_id, "f": self._fingerprint()}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def after(self) -> tuple[int, str] | None:
        if not self.cursor:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(self.cursor + "=" * (-len(self.cursor) % 4)))
            key, ident = int(data["k"]), data["i"]
            if not isinstance(ident, str) or len(ident) > 64 or data["f"] != self._fingerprint():
                raise ValueError
            if not -(2**63) <= key < 2**63:
                raise ValueError
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ViewError("Invalid cursor: it is damaged or belongs to other filters; start from the first page") \
                from None
        return key, ident

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string parameters for a link to this list with ``changes`` applied
        (changing a filter drops the cursor: pages of another query do not exist)."""
        base: dict[str, Any] = {"function": list(self.functions), "status": list(self.statuses), "q": self.q,
                                "from": self.started_from, "to": self.started_to, "error": self.error_type,
                                "sort": self.sort, "order": self.order, "limit": self.limit}
        if "cursor" not in changes:
            changes["cursor"] = ""
        base.update(changes)
        return {k: v for k, v in base.items()
                if v not in ("", None, [], ()) and not (k == "sort" and v == "start")
                and not (k == "order" and v == "desc") and not (k == "limit" and v == 50)}

    @property
    def active(self) -> bool:
        return bool(self.functions or self.statuses or self.q or self.started_from or self.started_to
                    or self.error_type)


@dataclass(frozen=True)
class ExecutionRow:
    arn: str
    name: str
    function: str
    version: str
    status: str
    start_ms: int
    end_ms: int | None
    duration_ms: int
    error_type: str | None
    invocations: int


@dataclass(frozen=True)
class ExecutionList:
    filters: ListFilters
    rows: tuple[ExecutionRow, ...]
    next_cursor: str | None
    status_counts: tuple[tuple[str, int], ...]
    total: int
    functions: tuple[str, ...]
    error_types: tuple[str, ...]


def build_execution_list(ds: Durascope, f: ListFilters) -> ExecutionList:
    query = f.query()
    rows, more = browse_executions(ds.db, query, f.sort, f.order == "desc", f.after(), f.limit)
    counts = execution_status_counts(ds.db, query)
    functions, errors = execution_facets(ds.db)
    now = now_ms()
    items = tuple(ExecutionRow(r.arn, r.name, r.function_name, r.function_version, r.status, r.start_ms, r.end_ms,
                               (r.end_ms or now) - r.start_ms, r.error_type, r.invocation_count) for r in rows)
    cursor = f.make_cursor(execution_sort_value(rows[-1], f.sort), rows[-1].execution_id) if more and rows else None
    ordered = tuple((s, counts.get(s, 0)) for s in STATUS_ORDER if counts.get(s) or s in f.statuses)
    total = sum(n for s, n in counts.items() if not f.statuses or s in f.statuses)
    return ExecutionList(f, items, cursor, ordered, total, tuple(functions), tuple(errors))


def filtered_arns(ds: Durascope, f: ListFilters, page: int = 500) -> Iterator[str]:
    """Every ARN the list's filters match, in the list's order, read page by page (keyset),
    for bulk export: memory holds one page of ARNs, never the histories."""
    query = f.query()
    after = None
    while True:
        rows, more = browse_executions(ds.db, query, f.sort, f.order == "desc", after, page)
        for r in rows:
            yield r.arn
        if not more or not rows:
            return
        after = (execution_sort_value(rows[-1], f.sort), rows[-1].execution_id)


# --- one execution --------------------------------------------------------------------------


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
class Gap:
    """Suspended time between two invocations (or after the last one, while running)."""

    start_ms: int
    end_ms: int
    reasons: tuple[str, ...]
    open: bool  # still suspended now

    @property
    def label(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "suspended"


@dataclass(frozen=True)
class Attempt:
    number: int
    start_ms: int
    end_ms: int | None
    outcome: str  # succeeded, failed, retrying, running
    error: ErrorInfo | None
    retry_delay_s: int | None
    event_id: int | None


@dataclass(frozen=True)
class OperationView:
    id: str
    parent_id: str | None
    depth: int
    name: str | None
    type: str
    sub_type: str | None
    status: str
    start_ms: int
    end_ms: int | None
    attempts: tuple[Attempt, ...]
    result: Payload | None
    error: ErrorInfo | None
    details: dict[str, Any]
    child_count: int

    @property
    def label(self) -> str:
        return self.name or (self.sub_type or self.type).lower()

    @property
    def failed(self) -> bool:
        return self.status in ("FAILED", "TIMED_OUT") or any(a.outcome in ("failed", "retrying")
                                                             for a in self.attempts)


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
class ExecutionView:
    arn: str
    name: str
    function: str
    version: str
    status: str
    input: Payload | None
    result: Payload | None
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

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def tree(self, limit: int = MAX_TREE_OPS) -> tuple[tuple[OperationView, ...], int]:
        """Operations for the tree (the first ``limit`` in tree order) and how many were left out."""
        return self.operations[:limit], max(0, len(self.operations) - limit)


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return event.get(f"{event['EventType']}Details") or {}


_CLOSES = {
    "WaitSucceeded", "WaitCancelled", "CallbackSucceeded", "CallbackFailed", "CallbackTimedOut",
    "StepSucceeded", "StepStarted", "ChainedInvokeSucceeded", "ChainedInvokeFailed", "ChainedInvokeTimedOut",
    "ChainedInvokeStopped",
}


def _fmt_instant(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S UTC")


# The event types whose name and details the walk reads; the store sends only their bodies.
_WALK_DETAILS = ("InvocationCompleted", "WaitStarted", "CallbackStarted", "ChainedInvokeStarted", "StepSucceeded",
                 "StepFailed")


def _walk_history(events: list[TimelineEvent], names: dict[str, str]) -> tuple[
        list[Invocation], list[tuple[str, ...]], dict[str, list[Attempt]], dict[str, str]]:
    """One pass over the history: invocations, what was pending after each one (the
    labels of the suspended gaps), every step attempt, and what is pending now."""
    invocations: list[Invocation] = []
    after_each: list[tuple[str, ...]] = []
    attempts: dict[str, list[Attempt]] = {}
    open_attempt: dict[str, tuple[int, int, int]] = {}  # op -> (number, start, event id)
    pending: dict[str, str] = {}  # op -> why the execution waits for it
    for e in events:
        kind, op, ts = e.type, e.op_id, e.ts_ms
        name, d = e.read()
        if kind == "InvocationCompleted":
            invocations.append(Invocation(len(invocations) + 1, int(d.get("StartTimestamp") or ts),
                                          int(d.get("EndTimestamp") or ts), d.get("RequestId"), e.event_id))
            after_each.append(tuple(pending.values()))
            continue
        if op and kind in _CLOSES:
            pending.pop(op, None)
        if kind == "StepStarted":
            n = len(attempts.get(op, [])) + 1
            open_attempt[op] = (n, ts, e.event_id)
        elif kind in ("StepSucceeded", "StepFailed"):
            retry = d.get("RetryDetails") or {}
            number, start, _ = open_attempt.pop(op, (len(attempts.get(op, [])) + 1, ts, e.event_id))
            number = int(retry.get("CurrentAttempt") or number)
            delay = retry.get("NextAttemptDelaySeconds")
            outcome = "succeeded" if kind == "StepSucceeded" else ("retrying" if delay is not None else "failed")
            attempts.setdefault(op, []).append(Attempt(number, start, ts, outcome, ErrorInfo.of(d.get("Error")),
                                                       delay, e.event_id))
            if delay is not None:
                pending[op] = f"retry of step '{_label(name, op, names)}' after {delay}s"
        elif kind == "WaitStarted":
            due = d.get("ScheduledEndTimestamp")
            pending[op] = f"wait '{_label(name, op, names)}'" + (f" until {_fmt_instant(int(due))}" if due else "")
        elif kind == "CallbackStarted":
            pending[op] = f"callback '{_label(name, op, names)}'"
        elif kind == "ChainedInvokeStarted":
            pending[op] = f"chained execution '{_label(name, op, names)}'"
    for op, (number, start, event_id) in open_attempt.items():
        attempts.setdefault(op, []).append(Attempt(number, start, None, "running", None, None, event_id))
    return invocations, after_each, attempts, pending


def _label(name: str | None, op: str | None, names: dict[str, str]) -> str:
    return name or names.get(op or "", "")


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


def build_execution(ds: Durascope, arn: str) -> ExecutionView:
    d = execution_detail(ds.db, arn, _WALK_DETAILS)
    e, now = d.execution, now_ms()
    names = {o.op_id: o.name for o in d.operations}
    invocations, after_each, attempts, pending_now = _walk_history(d.events, names)
    end = e.end_ms if e.end_ms is not None else now
    duration = max(0, end - e.start_ms)
    active = min(_active_ms(invocations), duration)

    gaps: list[Gap] = []
    for i, inv in enumerate(invocations):
        nxt = invocations[i + 1].start_ms if i + 1 < len(invocations) else None
        if nxt is not None and nxt > inv.end_ms:
            gaps.append(Gap(inv.end_ms, nxt, after_each[i], False))
        elif nxt is None and e.end_ms is None and now > inv.end_ms:
            gaps.append(Gap(inv.end_ms, now, tuple(pending_now.values()) or after_each[i], True))

    ops: list[OperationView] = []
    first_failure: tuple[int, str] | None = None
    for o, depth, n_children in _tree_order(d.operations):
        op_attempts = tuple(sorted(attempts.get(o.op_id, ()), key=lambda a: a.number))
        details = json.loads(o.details_json) if o.details_json else {}
        view = OperationView(o.op_id, o.parent_id, depth, o.name, o.type, o.sub_type, o.status, o.start_ms,
                             o.end_ms, op_attempts, Payload.of(o.result), ErrorInfo.of(o.error_json),
                             details if isinstance(details, dict) else {}, n_children)
        ops.append(view)
        failed_at = [a.event_id or 0 for a in op_attempts if a.outcome in ("failed", "retrying")]
        if view.status in ("FAILED", "TIMED_OUT") and not failed_at and n_children == 0:
            failed_at = [0]
        if failed_at and (first_failure is None or min(failed_at) < first_failure[0]):
            first_failure = (min(failed_at), o.op_id)
    first_event = next((ev.event_id for ev in d.events if ev.type.endswith(("Failed", "TimedOut"))), None)

    callbacks, waiting = _waiting_on(ds, d, names)
    return ExecutionView(
        e.arn, e.name, e.function_name, e.function_version, e.status, Payload.of(e.input_payload),
        Payload.of(e.result) if e.status == "SUCCEEDED" else None, ErrorInfo.of(e.error_json), e.start_ms,
        e.end_ms, duration, active, max(0, duration - active), len(d.events), tuple(invocations), tuple(gaps),
        tuple(ops), first_failure[1] if first_failure else None, first_event, waiting, callbacks, e.parent_arn,
        now)


def _waiting_on(ds: Durascope, d: Any, names: dict[str, str]) -> tuple[tuple[PendingCallback, ...],
                                                                        tuple[WaitingItem, ...]]:
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
        items.append(WaitingItem("callback", f"callback '{names.get(c.op_id) or c.op_id}'", c.op_id, timeout,
                                 c.callback_id, hb))
    for o in d.operations:
        if o.type == "WAIT" and o.status == "STARTED":
            items.append(WaitingItem("wait", f"wait '{o.name or o.op_id}'", o.op_id, timers.get(("wait", o.op_id))))
        elif o.type == "STEP" and o.status == "PENDING":
            due = timers.get(("retry", o.op_id)) or o.next_attempt_ms
            items.append(WaitingItem("retry", f"retry of step '{o.name or o.op_id}' (attempt {o.attempt + 1})",
                                     o.op_id, due))
        elif o.type == "CHAINED_INVOKE" and o.status == "STARTED":
            details = json.loads(o.details_json) if o.details_json else {}
            target = details.get("DurableExecutionArn") if isinstance(details, dict) else None
            items.append(WaitingItem("chained-invoke", f"chained execution '{o.name or o.op_id}'", o.op_id, None,
                                     chained_arn=target))
    if ("execution-timeout", "") in timers:
        items.append(WaitingItem("execution-timeout", "execution timeout", None, timers[("execution-timeout", "")]))
    return tuple(callbacks), tuple(items)


def full_payload(ds: Durascope, arn: str, kind: str, op_id: str | None = None) -> str:
    """The whole text behind a cut payload (input, result, or an operation's result)."""
    d = execution_detail(ds.db, arn, only_types=())
    if kind == "input":
        text = d.execution.input_payload
    elif kind == "result":
        text = d.execution.result
    elif kind == "op-result":
        op = next((o for o in d.operations if o.op_id == op_id), None)
        if op is None:
            raise ViewError(f"No operation {str(op_id)[:80]!r} in this execution", 404)
        text = op.result
    else:
        raise ViewError("kind must be input, result or op-result")
    if text is None:
        raise ViewError("This execution has no such payload", 404)
    return text


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    event_id: int
    type: str
    sub_type: str | None
    op_id: str | None
    name: str | None
    ts_ms: int
    summary: str
    raw: str  # the AWS history event, pretty JSON (timestamps in epoch seconds)


@dataclass(frozen=True)
class EventFilters:
    types: tuple[str, ...] = ()
    op: str = ""
    q: str = ""
    start: int = 1

    @classmethod
    def from_args(cls, args: Any) -> EventFilters:
        get_list = args.getlist if hasattr(args, "getlist") else (lambda k: [args[k]] if k in args else [])
        types = tuple(sorted({t.strip() for v in get_list("type") for t in v.split(",") if t.strip()}))
        if any(not t.isalnum() or len(t) > 40 for t in types):
            raise ViewError("type must be an event type such as StepFailed")
        try:
            start = int(args.get("start", 1) or 1)
        except ValueError:
            raise ViewError("start must be an event number") from None
        if not 1 <= start < 2**31:
            raise ViewError("start must be an event number from 1")
        return cls(types, (args.get("op") or "").strip()[:64], (args.get("q") or "").strip()[:200], start)

    def args(self, **changes: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"type": list(self.types), "op": self.op, "q": self.q, "start": self.start}
        base.update(changes)
        return {k: v for k, v in base.items() if v not in ("", None, [], ()) and not (k == "start" and v == 1)}


@dataclass(frozen=True)
class EventPage:
    arn: str
    filters: EventFilters
    events: tuple[EventRow, ...]
    matching: int
    next_start: int | None
    all_types: tuple[str, ...]


def _event_summary(e: dict[str, Any]) -> str:
    d = _details(e)
    err = ErrorInfo.of(d.get("Error"))
    if err:
        return err.summary
    if e["EventType"] == "InvocationCompleted":
        return f"{(d.get('EndTimestamp', 0) - d.get('StartTimestamp', 0)):.3f} s, request {d.get('RequestId', '')}"
    retry = d.get("RetryDetails") or {}
    if retry.get("CurrentAttempt"):
        return f"attempt {retry['CurrentAttempt']}"
    if "ScheduledEndTimestamp" in d:
        return f"until {dt.datetime.fromtimestamp(d['ScheduledEndTimestamp'], dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    return ""


def build_event_page(ds: Durascope, arn: str, f: EventFilters, window: int = EVENT_WINDOW) -> EventPage:
    # Raw JSON in the AWS shape (epoch seconds), as GetDurableExecutionHistory returns it.
    events, matching, more = history_window(ds.db, arn, f.types, f.op or None, f.q or None, f.start, window,
                                            ts=lambda ms: ms / 1000)
    rows = tuple(EventRow(e["EventId"], e["EventType"], e.get("SubType"), e.get("Id"), e.get("Name"),
                          int(round(e["EventTimestamp"] * 1000)), _event_summary(e),
                          json.dumps(e, indent=2, ensure_ascii=False)) for e in events)
    next_start = rows[-1].event_id + 1 if more and rows else None
    return EventPage(arn, f, rows, matching, next_start, tuple(history_event_types(ds.db, arn)))


# --- logs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRow:
    ts_ms: int
    level: str
    logger: str | None
    message: str
    invocation: int | None
    op_id: str | None
    op_name: str | None


@dataclass(frozen=True)
class LogPage:
    arn: str
    level: str
    invocation: int | None
    op: str
    rows: tuple[LogRow, ...]
    invocations: tuple[Invocation, ...]
    levels: tuple[str, ...] = field(default=LEVELS)


def build_logs(ds: Durascope, arn: str, args: Any) -> LogPage:
    level = (args.get("level") or "").upper()
    if level and level not in LEVELS:
        raise ViewError(f"level must be one of {', '.join(LEVELS)}")
    try:
        inv_filter = int(args["invocation"]) if args.get("invocation") else None
    except ValueError:
        raise ViewError("invocation must be a number") from None
    op = (args.get("op") or "").strip()[:64]
    # Invocations are all the logs need from the history.
    d = execution_detail(ds.db, arn, ("InvocationCompleted",), only_types=("InvocationCompleted",))
    names = {o.op_id: o.name for o in d.operations}
    invocations, _, _, _ = _walk_history(d.events, names)
    by_request = {i.request_id: i.index for i in invocations if i.request_id}
    request_id = None
    if inv_filter is not None:
        request_id = next((i.request_id for i in invocations if i.index == inv_filter), None)
        if request_id is None:
            raise ViewError(f"No invocation {inv_filter} in this execution")
    entries = execution_logs(ds.db, arn, level or None, request_id, op or None)
    rows = tuple(LogRow(x.ts_ms, x.level, x.logger, x.message, by_request.get(x.request_id), x.op_id,
                        names.get(x.op_id or "")) for x in entries)
    return LogPage(arn, level, inv_filter, op, rows, tuple(invocations))


def chained_arn(ds: Durascope, execution_id: str) -> str | None:
    return execution_by_id(ds.db, execution_id)


def validate_callback_payload(text: str) -> str:
    """A callback result must be JSON (what the SDK's wait_for_callback decodes)."""
    text = text.strip()
    if not text:
        return ""
    try:
        json.loads(text)
    except ValueError as exc:
        raise ViewError(f"Payload is not valid JSON: {exc}") from None
    return text

