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
from recorder.store.models import Event, Execution, LogLine
from recorder.wire import ts_seconds

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"})

# Detail fields that hold instants (stored in epoch ms).
_DETAIL_TS = {
    "InvocationCompleted": ("StartTimestamp", "EndTimestamp"),
    "WaitStarted": ("ScheduledEndTimestamp",),
    "ExecutionPaused": ("PauseRequestTimestamp",),
    "ExecutionResumed": ("ResumeRequestTimestamp",),
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


def pause_details(s: Session, execution: Execution) -> dict[str, Any] | None:
    """The pause request of a PAUSING/PAUSED execution (kept on its EXECUTION op)."""
    if execution.status not in ("PAUSING", "PAUSED"):
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
    if execution.status in ("PAUSING", "PAUSED") and pause:
        details: dict[str, Any] = {"PauseRequestTimestamp": ts(int(pause["PauseRequestTimestamp"])),
                                   "ExecutionTimeoutPaused": bool(pause.get("ExecutionTimeoutPaused", True))}
        reason = (pause.get("Reason") or {}).get("Payload")
        if include_data and reason is not None:
            details["Reason"] = reason
        out["PauseDetails"] = details
    if include_data:
        if execution.input_payload is not None:
            out["InputPayload"] = execution.input_payload
        if execution.status == "SUCCEEDED" and execution.result is not None:
            out["Result"] = execution.result
        if execution.status in ("FAILED", "TIMED_OUT", "STOPPED") and execution.error_json:
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


def execution_logs(db: Database, arn: str, min_level: str | None = None, request_id: str | None = None,
                   op_id: str | None = None, limit: int = 10_000) -> list[LogEntry]:
    """Captured handler output of one execution, oldest first. ``min_level`` keeps
    records at or above it (stdout/stderr lines count as INFO/ERROR)."""
    if min_level is not None and min_level.upper() not in LEVELS:
        raise InvalidParameterValueException(f"level must be one of {', '.join(LEVELS)}")
    with db.read() as s:
        execution = find_execution(s, arn)
        q = select(LogLine).where(LogLine.execution_id == execution.execution_id)
        if request_id:
            q = q.where(LogLine.request_id == request_id)
        if op_id:
            q = q.where(LogLine.op_id == op_id)
        rows = s.scalars(q.order_by(LogLine.id).limit(limit)).all()
    entries = [LogEntry(r.ts_ms, r.level, r.logger, r.message, r.request_id, r.op_id) for r in rows]
    if min_level is not None:
        floor = LEVELS.index(min_level.upper())
        entries = [e for e in entries if _level_rank(e.level) >= floor]
    return entries


def _level_rank(level: str) -> int:
    if level == "STDOUT":
        return LEVELS.index("INFO")
    if level == "STDERR":
        return LEVELS.index("ERROR")
    return LEVELS.index(level) if level in LEVELS else 0


# --- ListDurableExecutionsByFunction --------------------------------------------------

LIST_STATUSES = frozenset({"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "DELETING", "PAUSING", "PAUSED"})


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
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
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
