"""The failures of the log as rows: what error groups aggregate and full-text search finds.

An occurrence is derived from one event and the function of its execution, nothing else
(no clock, no engine state), so the live projection and ``db rebuild-projections`` give
the same rows. Grouping masks what varies between runs of the same failure: "payment 4411
declined for order 5f1e9a" and "payment 97 declined for order 0b2c11" are one group.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection

from recorder.store.events import StoredEvent
from recorder.store.sql import Raw

# Failure events and the kind of thing that failed.
KINDS = {
    "StepFailed": "step",
    "CallbackFailed": "callback",
    "CallbackTimedOut": "callback",
    "ExecutionFailed": "execution",
    "ExecutionTimedOut": "execution",
    "ExecutionStopped": "execution",
}
# An execution that timed out or was stopped may carry no error: its group is named by the outcome.
_NO_ERROR_TYPE = {
    "ExecutionTimedOut": "Execution.TimedOut",
    "ExecutionStopped": "Execution.Stopped",
    "CallbackTimedOut": "Callback.TimedOut",
}
MESSAGE_CHARS = 8000
FINGERPRINT_CHARS = 500
TEXT_CHARS = 32_000  # error data and stack traces: enough to search, bounded for the index

# Order matters: an ARN holds numbers and hex, a timestamp holds numbers.
_MASKS = (
    (re.compile(r"\barn:[A-Za-z0-9\-]+:[^\s\"'<>,;)\]]+"), "<arn>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # A hex id has digits and letters (a word of letters a-f alone, "facade", stays a word). It
    # masks as a number does: a random id is all digits now and then ("39e430", "325631").
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{4,}\b"), "<n>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def fingerprint(message: str) -> str:
    """The message with what varies between occurrences masked (numbers, UUIDs, ARNs, hex
    ids, timestamps), whitespace folded."""
    text = message[:MESSAGE_CHARS]
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return " ".join(text.split())[:FINGERPRINT_CHARS]


@dataclass(frozen=True)
class Occurrence:
    # None while its event's position is not drawn yet (``recorder.store.log``): the
    # insert then takes it from the event's row, found by ``event_id``.
    position: int | None
    execution_id: str
    function_name: str
    kind: str
    op_id: str | None
    op_name: str | None
    error_type: str
    fingerprint: str
    message: str
    error_data: str | None
    stack_trace: str | None
    ts_ms: int
    event_id: int | None = None


def _text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\x00", "")[:limit]


def occurrence(ev: StoredEvent, function_name: str) -> Occurrence | None:
    """The failure ``ev`` records, or None when it records none."""
    kind = KINDS.get(ev.event_type)
    if kind is None:
        return None
    envelope = ev.details.get("Error")
    err = envelope.get("Payload") if isinstance(envelope, dict) else None
    err = err if isinstance(err, dict) else {}
    error_type = _text(err.get("ErrorType"), 256) or _NO_ERROR_TYPE.get(ev.event_type, "Error")
    message = _text(err.get("ErrorMessage"), MESSAGE_CHARS) or ""
    stack = err.get("StackTrace")
    if isinstance(stack, list):
        stack = "\n".join(str(s) for s in stack)
    execution_level = kind == "execution"
    return Occurrence(
        position=ev.position,
        execution_id=ev.execution_id,
        function_name=function_name,
        kind=kind,
        op_id=None if execution_level else ev.op_id,
        op_name=None if execution_level else ev.body.get("Name"),
        error_type=error_type,
        fingerprint=fingerprint(message),
        message=message,
        error_data=_text(err.get("ErrorData"), TEXT_CHARS),
        stack_trace=_text(stack, TEXT_CHARS),
        ts_ms=ev.ts_ms,
        event_id=ev.event_id,
    )


COLUMNS = tuple(f for f in Occurrence.__dataclass_fields__ if f != "event_id")
INSERT_SQL = f"INSERT INTO error_occurrences ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
# An occurrence whose event was inserted in the same flush, just before (PostgreSQL).
INSERT_HELD_SQL = (
    f"INSERT INTO error_occurrences ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join('e.position' if c == 'position' else ':' + c for c in COLUMNS)} FROM events e "
    "WHERE e.execution_id = :execution_id AND e.event_id = :event_id"
)


def insert_many(raw: Raw, rows: list[Occurrence]) -> None:
    raw.many(INSERT_SQL, [_columns(r) for r in rows if r.position is not None])
    raw.many(INSERT_HELD_SQL, [asdict(r) for r in rows if r.position is None])


def _columns(row: Occurrence) -> dict[str, Any]:
    values = asdict(row)
    del values["event_id"]
    return values


def backfill(conn: Connection) -> int:
    """Fill the table from the log (the migration that adds it; a rebuild re-derives it
    through the projector)."""
    from sqlalchemy import text

    from recorder.store.log import row_to_stored

    names = ", ".join(f"'{t}'" for t in KINDS)
    last, count = 0, 0
    while True:
        rows = conn.execute(
            text(
                f"SELECT e.*, x.function_name AS fn FROM events e JOIN executions x ON x.execution_id = e.execution_id "
                f"WHERE e.position > :last AND e.event_type IN ({names}) ORDER BY e.position LIMIT 2000"
            ),
            {"last": last},
        ).all()
        if not rows:
            return count
        found = []
        for row in rows:
            ev = row_to_stored(row)
            occ = occurrence(ev, row.fn)
            if occ is not None:
                found.append(occ)
        insert_many(Raw(conn), found)
        count += len(found)
        last = rows[-1].position
