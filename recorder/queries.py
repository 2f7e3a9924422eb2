"""Read-only views of the store in the shapes the Lambda API returns.

Timestamps come back through a renderer: epoch seconds for REST/JSON
(``ts_seconds``), aware datetimes for Python callers, epoch ms raw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recorder.arns import ExecutionArn
from recorder.engine import tokens
from recorder.errors import InvalidParameterValueException, ResourceNotFoundException
from recorder.store.db import Database
from recorder.store.events import strip_execution_data
from recorder.store.log import row_to_stored
from recorder.store.models import Event, Execution, LogLine, Operation
from recorder.store.vocabulary import TERMINAL_EXECUTION, EventType, ExecutionStatus
from recorder.store.workset import OP_COLS, OpRow
from recorder.wire import ts_seconds

TERMINAL = TERMINAL_EXECUTION
# An execution paused or about to be (its pause details are shown).
_PAUSED = (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED)
# The terminal statuses that carry an Error.
_FAILED = TERMINAL_EXECUTION - {ExecutionStatus.SUCCEEDED}

# Detail fields that hold instants (stored in epoch ms).
_DETAIL_TS = {
    EventType.INVOCATION_COMPLETED: ("StartTimestamp", "EndTimestamp"),
    EventType.WAIT_STARTED: ("ScheduledEndTimestamp",),
    EventType.EXECUTION_PAUSED: ("PauseRequestTimestamp",),
    EventType.EXECUTION_RESUMED: ("ResumeRequestTimestamp",),
}


def render_event(row: Event, ts: Callable[[int], Any] = ts_seconds, include_data: bool = True) -> dict[str, Any]:
    event = row_to_stored(row).to_history()
    event["EventTimestamp"] = ts(event["EventTimestamp"])
    fields = _DETAIL_TS.get(row.event_type)
    if fields:
        key = f"{row.event_type}Details"
        details = dict(event[key])
        for f in fields:
            if f in details and details[f] is not None:
                details[f] = ts(int(details[f]))
        event[key] = details
    return event if include_data else strip_execution_data(event)


def find_execution(s: Session, arn: str) -> Execution:
    parsed = ExecutionArn.parse(arn)
    execution = s.get(Execution, parsed.execution_id)
    if execution is None or execution.arn != arn:
        raise ResourceNotFoundException(f"Durable execution not found: {arn}")
    return execution


_OUTCOME_SQL = ("SELECT arn, name, function_name, status, result, error_json, start_ms, end_ms "
                "FROM executions WHERE execution_id = :eid")


def execution_outcome(db: Database, arn: str) -> tuple[Any, ...]:
    """(arn, name, function, status, result, error JSON, start, end) of one execution:
    what ``Durascope.describe`` and every wait loop poll, on the driver connection."""
    with db.read_raw() as raw:
        row = raw.one(_OUTCOME_SQL, {"eid": ExecutionArn.parse(arn).execution_id})
    if row is None or row[0] != arn:
        raise ResourceNotFoundException(f"Durable execution not found: {arn}")
    return tuple(row)


def pause_details(s: Session, execution: Execution) -> dict[str, Any] | None:
    """The pause request of a PAUSING/PAUSED execution (kept on its EXECUTION op)."""
    if execution.status not in _PAUSED:
        return None
    from recorder.store.models import Operation

    op = s.get(Operation, (execution.execution_id, execution.execution_id))
    return json.loads(op.details_json or "{}").get("Pause") if op else None


@dataclass(frozen=True)
class HistoryPage:
    events: list[dict[str, Any]]
    next_marker: str | None


def history_page(db: Database, arn: str, include_data: bool = True, marker: str | None = None,
                 max_items: int | None = None, reverse: bool = False,
                 ts: Callable[[int], Any] = ts_seconds) -> HistoryPage:
    limit = 100 if max_items is None else max_items
    if not 1 <= limit <= 1000:
        raise InvalidParameterValueException("MaxItems must be from 1 to 1000")
    with db.read() as s:
        execution = find_execution(s, arn)
        q = select(Event).where(Event.execution_id == execution.execution_id, Event.event_id.is_not(None))
        if marker:
            after = tokens.parse_history_marker(marker)
            q = q.where(Event.event_id < after if reverse else Event.event_id > after)
        q = q.order_by(Event.event_id.desc() if reverse else Event.event_id).limit(limit + 1)
        rows = s.scalars(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    events = [render_event(r, ts, include_data) for r in rows]
    next_marker = tokens.history_marker(rows[-1].event_id or 0) if more and rows else None
    return HistoryPage(events, next_marker)


def iter_history(db: Database, arn: str, include_data: bool = True,
                 ts: Callable[[int], Any] = ts_seconds, page: int = 1000) -> Iterator[dict[str, Any]]:
    marker = None
    while True:
        p = history_page(db, arn, include_data, marker, page, False, ts)
        yield from p.events
        if not p.next_marker:
            return
        marker = p.next_marker


def execution_description(execution: Execution, function_arn: str, include_data: bool = True,
                          ts: Callable[[int], Any] = ts_seconds, pause: dict[str, Any] | None = None) -> dict[str, Any]:
    """GetDurableExecution's response body. ``pause``: see ``pause_details``."""
    out: dict[str, Any] = {
        "DurableExecutionArn": execution.arn,
        "DurableExecutionName": execution.name,
        "FunctionArn": function_arn,
        "Status": execution.status,
        "StartTimestamp": ts(execution.start_ms),
        "Version": execution.function_version,
        "ExecutionDataIncluded": include_data,
        "DurableConfig": {"ExecutionTimeout": execution.execution_timeout,
                          "RetentionPeriodInDays": execution.retention_days},
    }
    if execution.end_ms is not None:
        out["EndTimestamp"] = ts(execution.end_ms)
    elif execution.execution_timeout:
        out["ExpectedExecutionTimeoutTimestamp"] = ts(execution.start_ms + execution.execution_timeout * 1000)
    if execution.status in _PAUSED and pause:
        details: dict[str, Any] = {"PauseRequestTimestamp": ts(int(pause["PauseRequestTimestamp"])),
                                   "ExecutionTimeoutPaused": bool(pause.get("ExecutionTimeoutPaused", True))}
        reason = (pause.get("Reason") or {}).get("Payload")
        if include_data and reason is not None:
            details["Reason"] = reason
        out["PauseDetails"] = details
    if include_data:
        if execution.input_payload is not None:
            out["InputPayload"] = execution.input_payload
        if execution.status == ExecutionStatus.SUCCEEDED and execution.result is not None:
            out["Result"] = execution.result
        if execution.status in _FAILED and execution.error_json:
            out["Error"] = json.loads(execution.error_json)
    return out


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LogEntry:
    ts_ms: int
    level: str
    logger: str | None
    message: str
    request_id: str | None
    op_id: str | None
    id: int = 0  # the stored line's id: the logs page's anchor
    replay: bool = False  # written while the SDK replayed completed operations
    attempt: int | None = None  # the step attempt it was written in


def execution_logs(db: Database, arn: str, min_level: str | None = None, request_id: str | None = None,
                   op_id: str | None = None, limit: int = 10_000,
                   request_ids: tuple[str, ...] | None = None, replay: bool = True) -> list[LogEntry]:
    """Captured handler output of one execution, oldest first. ``min_level`` keeps
    records at or above it (stdout/stderr lines count as INFO/ERROR); ``request_ids``
    keeps the lines of those invocations; ``replay=False`` drops the lines written while
    the SDK replayed (the repeats of earlier invocations' lines)."""
    if min_level is not None and min_level.upper() not in LEVELS:
        raise InvalidParameterValueException(f"level must be one of {', '.join(LEVELS)}")
    with db.read() as s:
        execution = find_execution(s, arn)
        q = select(LogLine).where(LogLine.execution_id == execution.execution_id)
        if request_id:
            q = q.where(LogLine.request_id == request_id)
        if request_ids is not None:
            q = q.where(LogLine.request_id.in_(request_ids))
        if op_id:
            q = q.where(LogLine.op_id == op_id)
        if not replay:
            q = q.where(LogLine.replay.is_(False))
        rows = s.scalars(q.order_by(LogLine.id).limit(limit)).all()
    entries = [LogEntry(r.ts_ms, r.level, r.logger, r.message, r.request_id, r.op_id, r.id, r.replay, r.attempt)
               for r in rows]
    if min_level is not None:
        floor = LEVELS.index(min_level.upper())
        entries = [e for e in entries if level_rank(e.level) >= floor]
    return entries


def operation_ids(db: Database, arn: str, id_or_name: str) -> dict[str, str | None]:
    """The operations of an execution with this id, or else this name: {id: name}."""
    with db.read() as s:
        execution = find_execution(s, arn)
        rows = s.execute(select(Operation.op_id, Operation.name).where(
            Operation.execution_id == execution.execution_id,
            (Operation.op_id == id_or_name) | (Operation.name == id_or_name))).all()
    by_id = {r.op_id: r.name for r in rows if r.op_id == id_or_name}
    return by_id or {r.op_id: r.name for r in rows}


def level_rank(level: str) -> int:
    if level == "STDOUT":
        return LEVELS.index("INFO")
    if level == "STDERR":
        return LEVELS.index("ERROR")
    return LEVELS.index(level) if level in LEVELS else 0


# --- ListDurableExecutionsByFunction --------------------------------------------------

# ListDurableExecutionsByFunction accepts DELETING as a filter too (no execution here is ever in it).
LIST_STATUSES = frozenset({*ExecutionStatus, "DELETING"})


@dataclass(frozen=True)
class ExecutionListPage:
    executions: list[dict[str, Any]]
    next_marker: str | None


def _list_fingerprint(*parts: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _list_marker(start_ms: int, execution_id: str, fingerprint: str) -> str:
    import base64

    raw = json.dumps({"s": start_ms, "i": execution_id, "f": fingerprint}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


def _parse_list_marker(marker: str, fingerprint: str) -> tuple[int, str]:
    import base64
    import binascii

    try:
        data = json.loads(base64.b64decode(marker, validate=True))
        start_ms, execution_id = int(data["s"]), data["i"]
        if not isinstance(execution_id, str) or data["f"] != fingerprint:
            raise ValueError("marker belongs to another query")
        if not -(2**63) <= start_ms < 2**63 or len(execution_id) > 64:
            raise ValueError("marker out of range")
        return start_ms, execution_id
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidParameterValueException("Invalid Marker: it is unknown or belongs to another query") from exc


def list_executions(db: Database, function_name: str, function_arn: Callable[[str, str], str],
                    version: str | None = None, name: str | None = None,
                    statuses: list[str] | tuple[str, ...] | None = None,
                    started_after_ms: int | None = None, started_before_ms: int | None = None,
                    reverse: bool = False, marker: str | None = None, max_items: int | None = None,
                    ts: Callable[[int], Any] = ts_seconds) -> ExecutionListPage:
    """One page of a function's executions with keyset pagination on (start, id).

    Default order is newest first; ``reverse`` gives oldest first (spec 7.2, the opposite
    of history). ``started_after_ms``/``started_before_ms`` are inclusive. The marker is
    opaque and pinned to the filters it was issued for. ``function_arn(name, version)``
    renders the qualified FunctionArn of each item."""
    limit = 100 if max_items is None else max_items
    if not 1 <= limit <= 1000:
        raise InvalidParameterValueException("MaxItems must be from 1 to 1000")
    status_list = sorted(set(statuses)) if statuses else []
    bad = [s for s in status_list if s not in LIST_STATUSES]
    if bad:
        raise InvalidParameterValueException(
            f"Statuses must be among {', '.join(sorted(LIST_STATUSES))}; got {', '.join(bad)[:200]}")
    fingerprint = _list_fingerprint(function_name, version, name, status_list, started_after_ms,
                                    started_before_ms, bool(reverse))
    q = select(Execution).where(Execution.function_name == function_name)
    if version is not None:
        q = q.where(Execution.function_version == version)
    if name is not None:
        q = q.where(Execution.name == name)
    if status_list:
        q = q.where(Execution.status.in_(status_list))
    if started_after_ms is not None:
        q = q.where(Execution.start_ms >= started_after_ms)
    if started_before_ms is not None:
        q = q.where(Execution.start_ms <= started_before_ms)
    if marker:
        m_start, m_id = _parse_list_marker(marker, fingerprint)
        if reverse:
            q = q.where((Execution.start_ms > m_start)
                        | ((Execution.start_ms == m_start) & (Execution.execution_id > m_id)))
        else:
            q = q.where((Execution.start_ms < m_start)
                        | ((Execution.start_ms == m_start) & (Execution.execution_id < m_id)))
    if reverse:
        q = q.order_by(Execution.start_ms, Execution.execution_id)
    else:
        q = q.order_by(Execution.start_ms.desc(), Execution.execution_id.desc())
    with db.read() as s:
        rows = s.scalars(q.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items: list[dict[str, Any]] = []
    for r in rows:
        item: dict[str, Any] = {
            "DurableExecutionArn": r.arn,
            "DurableExecutionName": r.name,
            "FunctionArn": function_arn(r.function_name, r.function_version),
            "Status": r.status,
            "StartTimestamp": ts(r.start_ms),
        }
        if r.end_ms is not None:
            item["EndTimestamp"] = ts(r.end_ms)
        items.append(item)
    next_marker = _list_marker(rows[-1].start_ms, rows[-1].execution_id, fingerprint) if more and rows else None
    return ExecutionListPage(items, next_marker)


# --- viewer read side (all functions, keyset pages, per-execution detail) ------------------
#
# The viewer's execution list spans every function and sorts by start, end or duration, so
# it cannot reuse ``list_executions`` (one function, start order). Keyset pagination only:
# the cursor holds the last row's sort key and id, never an offset, so page N costs the same
# as page 1 on a large store.

VIEW_SORTS = ("start", "end", "duration")
# Running executions have no end and no duration yet; they sort as "later/longer than
# anything finished" so the key is total and the keyset stays exact.
_OPEN_END = 2**62


def _view_sort_key(sort: str) -> Any:
    from sqlalchemy import func

    if sort == "end":
        return func.coalesce(Execution.end_ms, _OPEN_END)
    if sort == "duration":
        return func.coalesce(Execution.end_ms - Execution.start_ms, _OPEN_END)
    return Execution.start_ms


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ExecutionQuery:
    """Filters of the viewer's execution list (all optional; instants inclusive, epoch ms)."""

    functions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    text: str | None = None
    started_from_ms: int | None = None
    started_to_ms: int | None = None
    error_type: str | None = None


def _apply_execution_query(q: Any, f: ExecutionQuery, with_status: bool = True) -> Any:
    if f.functions:
        q = q.where(Execution.function_name.in_(f.functions))
    if with_status and f.statuses:
        q = q.where(Execution.status.in_(f.statuses))
    if f.text:
        pattern = f"%{_like_escape(f.text)}%"
        q = q.where(Execution.name.like(pattern, escape="\\") | Execution.arn.like(pattern, escape="\\"))
    if f.started_from_ms is not None:
        q = q.where(Execution.start_ms >= f.started_from_ms)
    if f.started_to_ms is not None:
        q = q.where(Execution.start_ms <= f.started_to_ms)
    if f.error_type:
        q = q.where(Execution.error_type.like(f"%{_like_escape(f.error_type)}%", escape="\\"))
    return q


def browse_executions(db: Database, f: ExecutionQuery, sort: str = "start", descending: bool = True,
                      after: tuple[int, str] | None = None, limit: int = 50) -> tuple[list[Execution], bool]:
    """One keyset page of executions across all functions: rows after ``after`` (the
    (sort key, execution_id) of the previous page's last row) and whether more follow."""
    if sort not in VIEW_SORTS:
        raise InvalidParameterValueException(f"sort must be one of {', '.join(VIEW_SORTS)}")
    key = _view_sort_key(sort)
    q = _apply_execution_query(select(Execution), f)
    if after is not None:
        k, i = after
        if descending:
            q = q.where((key < k) | ((key == k) & (Execution.execution_id < i)))
        else:
            q = q.where((key > k) | ((key == k) & (Execution.execution_id > i)))
    order = (key.desc(), Execution.execution_id.desc()) if descending else (key, Execution.execution_id)
    with db.read() as s:
        rows = list(s.scalars(q.order_by(*order).limit(limit + 1)).all())
        for r in rows:
            s.expunge(r)
    return rows[:limit], len(rows) > limit


def execution_sort_value(row: Execution, sort: str) -> int:
    if sort == "end":
        return row.end_ms if row.end_ms is not None else _OPEN_END
    if sort == "duration":
        return row.end_ms - row.start_ms if row.end_ms is not None else _OPEN_END
    return row.start_ms


def execution_status_counts(db: Database, f: ExecutionQuery) -> dict[str, int]:
    """Count per status under every filter except the status one (so the chips show what
    each status would give)."""
    from sqlalchemy import func

    q = _apply_execution_query(select(Execution.status, func.count()), f, with_status=False)
    with db.read() as s:
        return {status: n for status, n in s.execute(q.group_by(Execution.status)).all()}


def execution_facets(db: Database) -> tuple[list[str], list[str]]:
    """Known function names and error types, for the filter drop-downs."""
    from recorder.store.models import Function

    with db.read() as s:
        functions = sorted(set(s.scalars(select(Function.name)).all())
                           | set(s.scalars(select(Execution.function_name).distinct()).all()))
        errors = sorted(e for e in s.scalars(select(Execution.error_type).distinct()).all() if e)
    return functions, errors[:200]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A history event as the viewer's timeline reads it: its columns, and for the types
    asked for its stored JSON body (the others' bodies are never fetched)."""

    event_id: int
    type: str
    op_id: str | None
    ts_ms: int
    body: str | None

    def read(self) -> tuple[str | None, dict[str, Any]]:
        """Name and ``<EventType>Details`` (instants in epoch ms), decoded on each call for
        the caller to drop: a whole history of decoded bodies held at once kept tens of
        thousands of dicts alive and set off full garbage collections during the page."""
        if self.body is None:
            return None, {}
        doc = json.loads(self.body)
        return doc.get("Name"), doc.get(f"{self.type}Details") or {}


@dataclass(frozen=True)
class ExecutionDetail:
    """Everything the viewer's execution page reads, in one read transaction."""

    execution: Execution
    function_arn_version: str
    operations: list[OpRow]  # in start order
    callbacks: list[Any]
    timers: list[Any]
    events: list[TimelineEvent]


def _operation_rows(s: Session, execution_id: str) -> list[OpRow]:
    from recorder.store.models import Operation

    # Core rows (the session's connection, no ORM loading) into the store's slotted row type:
    # ORM objects, and even SQLAlchemy rows' attribute access, cost more than the page does
    # with them. The viewer only reads these.
    columns = Operation.__table__.c
    q = select(*(columns[name] for name in OP_COLS)).where(Operation.execution_id == execution_id)
    return [OpRow(*row) for row in s.connection().execute(q.order_by(Operation.seq))]


def _timeline_events(s: Session, execution_id: str, detail_types: tuple[str, ...],
                     only_types: tuple[str, ...] | None) -> list[TimelineEvent]:
    from sqlalchemy import case, literal

    # Core rows, not ORM objects, and the JSON body only where it is read: the 10,000-event
    # page spent most of its time building and decoding events it never looked at.
    body = case((Event.event_type.in_(detail_types), Event.body), else_=None) if detail_types else literal(None)
    q = select(Event.event_id, Event.event_type, Event.op_id, Event.ts_ms, body).where(
        Event.execution_id == execution_id, Event.event_id.is_not(None))
    if only_types is not None:
        q = q.where(Event.event_type.in_(only_types))
    return [TimelineEvent(*row) for row in s.connection().execute(q.order_by(Event.event_id))]


def execution_detail(db: Database, arn: str, detail_types: tuple[str, ...] = (),
                     only_types: tuple[str, ...] | None = None) -> ExecutionDetail:
    """The execution row, its operations, callbacks, timers and history, in one transaction
    so the parts agree with each other. Events come as ``TimelineEvent``: every event (or
    only those of ``only_types``; ``()`` for none), with their bodies for ``detail_types``."""
    from recorder.store.models import Callback, Timer

    with db.read() as s:
        e = find_execution(s, arn)
        ops = _operation_rows(s, e.execution_id)
        cbs = list(s.scalars(select(Callback).where(Callback.execution_id == e.execution_id)).all())
        timers = list(s.scalars(select(Timer).where(Timer.execution_id == e.execution_id)).all())
        events = _timeline_events(s, e.execution_id, detail_types, only_types) if only_types != () else []
        for obj in [e, *cbs, *timers]:
            s.expunge(obj)
    return ExecutionDetail(e, e.function_version, ops, cbs, timers, events)


def history_window(db: Database, arn: str, types: tuple[str, ...] = (), op_id: str | None = None,
                   text: str | None = None, from_event_id: int = 1, limit: int = 200,
                   ts: Callable[[int], Any] = lambda ms: ms) -> tuple[list[dict[str, Any]], int, bool]:
    """A filtered window of one execution's history, from ``from_event_id`` on (keyset on
    EventId): (events, number of matching events in the whole history, more follow)."""
    from sqlalchemy import func

    with db.read() as s:
        e = find_execution(s, arn)
        q = select(Event).where(Event.execution_id == e.execution_id, Event.event_id.is_not(None))
        if types:
            q = q.where(Event.event_type.in_(types))
        if op_id:
            q = q.where(Event.op_id == op_id)
        if text:
            q = q.where(Event.body.like(f"%{_like_escape(text)}%", escape="\\"))
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.where(Event.event_id >= from_event_id).order_by(Event.event_id).limit(limit + 1)).all()
        events = [render_event(r, ts) for r in rows[:limit]]
    return events, total, len(rows) > limit


def history_event_types(db: Database, arn: str) -> list[str]:
    with db.read() as s:
        e = find_execution(s, arn)
        return sorted(s.scalars(select(Event.event_type).where(
            Event.execution_id == e.execution_id, Event.event_id.is_not(None)).distinct()).all())


def execution_refs(db: Database, execution_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """(arn, name, function) of each stored execution among ``execution_ids``."""
    ids = list(dict.fromkeys(execution_ids))
    out: dict[str, tuple[str, str, str]] = {}
    with db.read() as s:
        for i in range(0, len(ids), 500):
            q = select(Execution.execution_id, Execution.arn, Execution.name, Execution.function_name).where(
                Execution.execution_id.in_(ids[i:i + 500]))
            out.update({r[0]: (r[1], r[2], r[3]) for r in s.execute(q)})
    return out


def execution_origin(db: Database, execution_id: str) -> str | None:
    """Where an imported execution came from ("imported from run.zip", "pulled from AWS")."""
    with db.read() as s:
        # ExecutionStarted is event 1: the (execution, event id) key finds it without a scan.
        extra = s.scalar(select(Event.extra).where(Event.execution_id == execution_id, Event.event_id == 1))
    return json.loads(extra).get("ImportedFrom") if extra else None


def execution_by_id(db: Database, execution_id: str) -> str | None:
    """The ARN of an execution id (chained invokes name their target by id), if stored."""
    with db.read() as s:
        e = s.get(Execution, execution_id)
        return e.arn if e is not None else None
