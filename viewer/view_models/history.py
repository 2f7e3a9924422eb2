"""An execution's event table (windows of its AWS history) and its captured logs."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from recorder.api import Durascope
from recorder.queries import LEVELS, execution_detail, execution_logs, history_event_types, history_window, level_rank
from viewer.operation_logs import belongs, fold, named_operation, split_records
from viewer.view_models.common import ErrorInfo, ViewError, int_arg, split_values
from viewer.view_models.history_walk import Invocation, walk_history

EVENT_WINDOW = 200


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
        types = split_values(args, "type")
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
    d = e.get(f"{e['EventType']}Details") or {}
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
    line_id: int
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

    @property
    def filtered(self) -> bool:
        return bool(self.level or self.invocation or self.op)

    @property
    def args(self) -> dict[str, Any]:
        """The filters as query parameters."""
        out = {"level": self.level, "invocation": self.invocation, "op": self.op}
        return {k: v for k, v in out.items() if v}


def build_logs(ds: Durascope, arn: str, args: Any) -> LogPage:
    """The lines a handler wrote, one row per record (a worker's traceback lines folded into
    their record). ``op`` keeps an operation's own lines: the ones tagged with it and the
    SDK's lines naming it, with their tracebacks."""
    level = (args.get("level") or "").upper()
    if level and level not in LEVELS:
        raise ViewError(f"level must be one of {', '.join(LEVELS)}")
    inv_filter = int_arg(args, "invocation", None, 1, 2**31)
    op = (args.get("op") or "").strip()[:64]
    # Invocations are all the logs need from the history.
    d = execution_detail(ds.db, arn, ("InvocationCompleted",), only_types=("InvocationCompleted",))
    names = {o.op_id: o.name for o in d.operations}
    invocations = walk_history(d.events, names).invocations
    by_request = {i.request_id: i.index for i in invocations if i.request_id}
    request_id = None
    if inv_filter is not None:
        request_id = next((i.request_id for i in invocations if i.index == inv_filter), None)
        if request_id is None:
            raise ViewError(f"No invocation {inv_filter} in this execution")
    lines = fold(split_records(execution_logs(ds.db, arn, request_id=request_id)))
    if op:
        lines = [ln for ln in lines if belongs(ln, op)]
    if level:
        floor = LEVELS.index(level)
        lines = [ln for ln in lines if level_rank(ln.level) >= floor]
    rows = []
    for x in lines:
        op_id = x.op_id or named_operation(x)
        rows.append(LogRow(x.line_id, x.ts_ms, x.level, x.logger, x.text, by_request.get(x.request_id), op_id,
                           names.get(op_id or "")))
    return LogPage(arn, level, inv_filter, op, tuple(rows), tuple(invocations))

