"""Status-change notifications derived from the log (docs/protocol.md#status-changes).

One notification per ``ExecutionStarted`` (RUNNING) and per terminal execution event
(SUCCEEDED, FAILED, TIMED_OUT, STOPPED), read from ``events`` in global position
order. Nothing else is stored: a follower that replays positions gets the same
events again, with the same ``id`` (a UUID derived from the execution id and the log
position).

Imported histories (``durascope import``/``pull``) announce nothing: their changes
happened elsewhere, earlier, and a webhook that pages someone about an old failure
because it was copied in would be wrong. The cursor still moves past their events.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from recorder.arns import function_arn
from recorder.config import Settings
from recorder.store.events import TERMINAL_EXECUTION_EVENTS
from recorder.store.models import Event, Execution
from recorder.store.vocabulary import LISTED_EXECUTION

DETAIL_TYPE = "Durable Execution Status Change"
SOURCE = "aws.lambda"
STATUS_OF_EVENT = {"ExecutionStarted": "RUNNING", **TERMINAL_EXECUTION_EVENTS}
STATUSES = tuple(str(s) for s in LISTED_EXECUTION)
TERMINAL_STATUSES = frozenset(TERMINAL_EXECUTION_EVENTS.values())
# Fixed namespace: ids are stable across processes, restarts and replays.
_ID_NAMESPACE = uuid.UUID("6f1c7d0e-5a43-4b8e-9a43-64757261736e")

_EV = Event.__table__


# time.strftime on a struct_time: datetime.strftime with a tzinfo costs ~15x more, and
# three of these per status change were a fifth of the webhook fan-out's CPU.
def iso_seconds(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ms) // 1000))


def iso_millis(ms: int) -> str:
    ms = int(ms)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def event_uuid(execution_id: str, position: int) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{execution_id}/{position}"))


@dataclass(frozen=True)
class StatusChange:
    position: int
    execution_id: str
    status: str
    arn: str
    name: str
    function_name: str
    function_version: str
    start_ms: int
    ts_ms: int

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def id(self) -> str:
        return event_uuid(self.execution_id, self.position)

    def function_arn(self, settings: Settings) -> str:
        return function_arn(settings.region, settings.account_id, self.function_name, self.function_version)

    def to_event(self, settings: Settings) -> dict[str, Any]:
        """The EventBridge event Lambda publishes for this change (docs/protocol.md#status-changes)."""
        detail: dict[str, Any] = {
            "durableExecutionArn": self.arn,
            "durableExecutionName": self.name,
            "functionArn": self.function_arn(settings),
            "status": self.status,
            "startTimestamp": iso_millis(self.start_ms),
        }
        if self.terminal:
            detail["endTimestamp"] = iso_millis(self.ts_ms)
        return {
            "version": "0",
            "id": self.id,
            "detail-type": DETAIL_TYPE,
            "source": SOURCE,
            "account": settings.account_id,
            "time": iso_seconds(self.ts_ms),
            "region": settings.region,
            "resources": [],
            "detail": detail,
        }


@dataclass(frozen=True)
class Filter:
    """Which status changes a reader wants. ``function`` is a function name or a
    function-ARN prefix (EventBridge rules filter on a ``functionArn`` prefix)."""

    statuses: frozenset[str] | None = None
    function: str | None = None
    name_prefix: str | None = None

    def matches_function(self, change: StatusChange, settings: Settings) -> bool:
        if not self.function:
            return True
        if self.function.startswith("arn:"):
            return change.function_arn(settings).startswith(self.function)
        return change.function_name == self.function or change.function_name.startswith(self.function)

    def matches(self, change: StatusChange, settings: Settings) -> bool:
        if self.statuses is not None and change.status not in self.statuses:
            return False
        if self.name_prefix and not change.name.startswith(self.name_prefix):
            return False
        return self.matches_function(change, settings)


def parse_statuses(values: Iterable[str] | None) -> frozenset[str] | None:
    """``["failed", "TIMED_OUT,STOPPED"]`` -> frozenset; unknown names raise ValueError."""
    if values is None:
        return None
    out: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip().upper()
            if not part:
                continue
            if part not in STATUSES:
                raise ValueError(f"unknown status {part!r}: use one of {', '.join(STATUSES)}")
            out.add(part)
    return frozenset(out) if out else None


def _started_facts(conn: Connection | Session, execution_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], int]]:
    """ExecutionStarted ``extra`` and timestamp of each execution."""
    out: dict[str, tuple[dict[str, Any], int]] = {}
    ids = list(dict.fromkeys(execution_ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = conn.execute(
            select(_EV.c.execution_id, _EV.c.extra, _EV.c.ts_ms).where(
                _EV.c.execution_id.in_(chunk), _EV.c.event_type == "ExecutionStarted"
            )
        ).all()
        for r in rows:
            out[r.execution_id] = (json.loads(r.extra) if r.extra else {}, r.ts_ms)
    missing = [e for e in ids if e not in out]
    if missing:  # an execution whose start is not in the log (imported): use the projection
        ex = Execution.__table__
        for r in conn.execute(select(ex).where(ex.c.execution_id.in_(missing))).all():
            out[r.execution_id] = (
                {
                    "Arn": r.arn,
                    "FunctionName": r.function_name,
                    "Imported": r.imported,
                    "FunctionVersion": r.function_version,
                    "ExecutionName": r.name,
                },
                r.start_ms,
            )
    return out


def read_status_changes(conn: Connection | Session, after: int, limit: int = 100) -> tuple[list[StatusChange], int]:
    """Status changes with position > ``after``, at most ``limit``, in log order.

    Returns them with the position read up to (the next cursor): past the last
    change returned, or the log head when fewer were found (positions are gap-safe,
    recorder.store.log, so nothing can later appear below the head).
    """
    # Head first: rows are read up to it, so a change committed between the two
    # statements (PostgreSQL READ COMMITTED) is never skipped by the cursor.
    head = head_position(conn)
    rows = conn.execute(
        select(_EV.c.position, _EV.c.execution_id, _EV.c.event_type, _EV.c.ts_ms, _EV.c.extra)
        .where(_EV.c.position > after, _EV.c.position <= head, _EV.c.event_type.in_(list(STATUS_OF_EVENT)))
        .order_by(_EV.c.position)
        .limit(limit)
    ).all()
    cursor = rows[-1].position if len(rows) >= limit else max(after, head)
    terminal_ids = [r.execution_id for r in rows if r.event_type != "ExecutionStarted"]
    facts = _started_facts(conn, terminal_ids) if terminal_ids else {}
    out: list[StatusChange] = []
    for r in rows:
        if r.event_type == "ExecutionStarted":
            extra, start_ms = (json.loads(r.extra) if r.extra else {}), r.ts_ms
        else:
            got = facts.get(r.execution_id)
            if got is None:
                continue
            extra, start_ms = got
        arn = extra.get("Arn")
        if not arn or extra.get("Imported"):
            continue
        out.append(
            StatusChange(
                position=r.position,
                execution_id=r.execution_id,
                status=STATUS_OF_EVENT[r.event_type],
                arn=arn,
                name=extra.get("ExecutionName") or arn.rsplit("/", 2)[-2],
                function_name=extra.get("FunctionName") or "",
                function_version=extra.get("FunctionVersion") or "$LATEST",
                start_ms=start_ms,
                ts_ms=r.ts_ms,
            )
        )
    return out, cursor


def read_filtered(
    conn: Connection | Session, after: int, limit: int, flt: Filter, settings: Settings, max_batches: int = 20
) -> tuple[list[StatusChange], int]:
    """Like ``read_status_changes`` but only changes matching ``flt``; the cursor moves past
    what was scanned, so a filtered reader never rescans non-matching changes."""
    out: list[StatusChange] = []
    cursor = after
    for _ in range(max_batches):
        want = limit - len(out)
        batch, nxt = read_status_changes(conn, cursor, max(want, 100))
        for ch in batch:
            if flt.matches(ch, settings):
                out.append(ch)
                if len(out) >= limit:
                    return out, ch.position
        cursor = nxt
        if len(batch) < max(want, 100):
            break
    return out, cursor


def head_position(conn: Connection | Session) -> int:
    return conn.execute(select(_EV.c.position).order_by(_EV.c.position.desc()).limit(1)).scalar() or 0
