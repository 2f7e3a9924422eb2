"""An execution's event table (windows of its AWS history) and its captured logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from recorder.api import Durascope
from recorder.queries import LEVELS, execution_detail, execution_logs, history_event_types, history_window, level_rank
from viewer.operation_logs import attempt_lines, belongs, fold, named_operation, split_records
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
    replay: bool = False  # written while the SDK replayed completed operations
    attempt: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "operationId": self.op_id}


@dataclass(frozen=True)
class LogGroup:
    """The lines of one operation (or of the handler's own code, ``op_id`` None), in order."""

    op_id: str | None
    op_name: str | None
    rows: tuple[LogRow, ...]


@dataclass(frozen=True)
class LogPage:
    arn: str
    level: str
    invocation: int | None
    op: str
    rows: tuple[LogRow, ...]
    invocations: tuple[Invocation, ...]
    levels: tuple[str, ...] = field(default=LEVELS)
    attempt: int | None = None
    show_replay: bool = False
    hidden_replays: int = 0  # lines written while replaying, left out (show_replay shows them)
    group: bool = False  # grouped by operation

    @property
    def filtered(self) -> bool:
        return bool(self.level or self.invocation or self.op or self.attempt)

    @property
    def args(self) -> dict[str, Any]:
        """The filters as query parameters."""
        out = {"level": self.level, "invocation": self.invocation, "op": self.op, "attempt": self.attempt,
               "replay": "show" if self.show_replay else "", "group": "operation" if self.group else ""}
        return {k: v for k, v in out.items() if v}

    def with_args(self, **changes: Any) -> dict[str, Any]:
        out = {**self.args, **changes}
        return {k: v for k, v in out.items() if v}

    @property
    def groups(self) -> tuple[LogGroup, ...]:
        """Rows by operation, each operation where its first line is."""
        order: dict[str | None, list[LogRow]] = {}
        for r in self.rows:
            order.setdefault(r.op_id, []).append(r)
        return tuple(LogGroup(op_id, rows[0].op_name, tuple(rows)) for op_id, rows in order.items())

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "rows"}
        out["rows"] = [r.to_json() for r in self.rows]
        return out


def _operation_ids(wanted: str, names: dict[str, str | None]) -> set[str]:
    """An operation given by its id or by its name (every operation of that name)."""
    if wanted in names:
        return {wanted}
    by_name = {op_id for op_id, name in names.items() if name == wanted}
    return by_name or {wanted}


def build_logs(ds: Durascope, arn: str, args: Any) -> LogPage:
    """The lines a handler wrote, one row per record (a worker's traceback lines folded into
    their record). ``op`` keeps an operation's own lines (by id or name): the ones tagged
    with it and the SDK's lines naming it, with their tracebacks; ``attempt`` one attempt's.
    Lines written while the SDK replayed are left out unless ``replay=show``."""
    level = (args.get("level") or "").upper()
    if level and level not in LEVELS:
        raise ViewError(f"level must be one of {', '.join(LEVELS)}")
    inv_filter = int_arg(args, "invocation", None, 1, 2**31)
    op = (args.get("op") or "").strip()[:256]
    attempt = int_arg(args, "attempt", None, 1, 2**31)
    if attempt is not None and not op:
        raise ViewError("attempt needs op: the attempt of which operation")
    show_replay = (args.get("replay") or "").lower() in ("show", "1", "true", "yes")
    group = (args.get("group") or "") == "operation"
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
        wanted = _operation_ids(op, names)
        if attempt is not None:
            lines = [ln for op_id in wanted for ln in attempt_lines(lines, op_id, attempt)]
            lines.sort(key=lambda ln: ln.line_id)
        else:
            lines = [ln for ln in lines if any(belongs(ln, op_id) for op_id in wanted)]
    if level:
        floor = LEVELS.index(level)
        lines = [ln for ln in lines if level_rank(ln.level) >= floor]
    hidden = 0
    if not show_replay:
        hidden = sum(1 for ln in lines if ln.replay)
        lines = [ln for ln in lines if not ln.replay]
    rows = []
    for x in lines:
        op_id = x.op_id or named_operation(x)
        rows.append(LogRow(x.line_id, x.ts_ms, x.level, x.logger, x.text, by_request.get(x.request_id), op_id,
                           names.get(op_id or ""), x.replay, x.attempt))
    return LogPage(arn, level, inv_filter, op, tuple(rows), tuple(invocations), attempt=attempt,
                   show_replay=show_replay, hidden_replays=hidden, group=group)

