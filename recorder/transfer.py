"""Histories in and out: export in the formats tools already read, import them back.

Export formats (one execution):

* ``json``: what ``GetDurableExecutionHistory`` returns, all pages joined, plus the
  execution's ARN so the file can be imported on its own:
  ``{"DurableExecutionArn": ..., "Events": [...]}`` (EventTimestamp in epoch seconds).
* ``ndjson``: one history event per line.
* ``csv``: one operation per line (name, type, attempts, start, end, duration, status, error).

Bulk export streams one execution at a time into a zip (one ``<id>.json`` per execution
plus ``manifest.json``) or an NDJSON stream (one ``{"DurableExecutionArn", "Events"}``
per line), so memory never holds more than one history.

Import takes our files and JSON saved from ``aws lambda get-durable-execution-history``
(ISO timestamps; give ``arn`` since that output has none). Every input is validated in
full before anything is written, in one transaction per file: every event against the
API's own shapes (``recorder.history_shapes``: types, lengths, forms, required and unknown
fields, named in the message), unknown event types, deep nesting, EventIds that are not
1..n, absurd numbers or timestamps, oversize files, zip bombs and zip entry names that try
to leave the archive are refused with a message and change nothing. Imported executions are
read-only: no engine ever invokes them and no timer is set for them. Export, import, export
again gives the same bytes.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import select

from recorder.arns import ExecutionArn
from recorder.errors import InvalidParameterValueException
from recorder.history_shapes import ShapeError, check_event
from recorder.queries import iter_history
from recorder.store.db import Database
from recorder.store.events import StoredEvent, compact_json
from recorder.store.models import Execution
from recorder.store.projector import Projector
from recorder.store.sql import Raw
from recorder.store.workset import Workset

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_ZIP_ENTRIES = 100_000
MAX_ZIP_RATIO = 200
MAX_EVENTS = 1_000_000
# 2000-01-01 .. 2200-01-01: anything outside is not a real event time.
MIN_TS_MS, MAX_TS_MS = 946_684_800_000, 7_258_118_400_000

KNOWN_EVENTS = frozenset(
    {
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionStopped",
        "ExecutionPaused",
        "ExecutionResumed",
        "ContextStarted",
        "ContextSucceeded",
        "ContextFailed",
        "StepStarted",
        "StepSucceeded",
        "StepFailed",
        "WaitStarted",
        "WaitSucceeded",
        "WaitCancelled",
        "CallbackStarted",
        "CallbackSucceeded",
        "CallbackFailed",
        "CallbackTimedOut",
        "ChainedInvokeStarted",
        "ChainedInvokeSucceeded",
        "ChainedInvokeFailed",
        "ChainedInvokeTimedOut",
        "ChainedInvokeStopped",
        "InvocationCompleted",
    }
)
_TS_DETAILS = {
    "InvocationCompleted": ("StartTimestamp", "EndTimestamp"),
    "WaitStarted": ("ScheduledEndTimestamp",),
    "ExecutionPaused": ("PauseRequestTimestamp",),
    "ExecutionResumed": ("ResumeRequestTimestamp",),
}


class ImportRefused(ValueError):
    """A file that cannot be imported; the message says why. Nothing was written."""


# --- export ---------------------------------------------------------------------------


def history_document(db: Database, arn: str) -> dict[str, Any]:
    return {"DurableExecutionArn": arn, "Events": list(iter_history(db, arn))}


def write_json(db: Database, arn: str, out: IO[str]) -> None:
    json.dump(history_document(db, arn), out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_ndjson(db: Database, arn: str, out: IO[str]) -> None:
    for event in iter_history(db, arn):
        out.write(json.dumps(event, ensure_ascii=False) + "\n")


def operation_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per operation, from its events: attempts, start/end, status, last error."""
    ops: dict[str, dict[str, Any]] = {}
    for e in events:
        op_id = e.get("Id")
        t = e["EventType"]
        if not op_id or t.startswith("Execution") or t == "InvocationCompleted":
            continue
        row = ops.setdefault(
            op_id,
            {
                "name": e.get("Name", ""),
                "type": t.replace("Started", "")
                .replace("Succeeded", "")
                .replace("Failed", "")
                .replace("TimedOut", "")
                .replace("Cancelled", "")
                .replace("Stopped", ""),
                "sub_type": e.get("SubType", ""),
                "attempts": 0,
                "start": e["EventTimestamp"],
                "end": None,
                "status": "STARTED",
                "error": "",
            },
        )
        details = e.get(f"{t}Details") or {}
        retry = details.get("RetryDetails")
        if retry:
            row["attempts"] = retry.get("CurrentAttempt", row["attempts"])
        if t.endswith(("Succeeded", "Failed", "TimedOut", "Cancelled", "Stopped")) and not (
            retry and "NextAttemptDelaySeconds" in retry
        ):
            row["end"] = e["EventTimestamp"]
            row["status"] = {
                "Succeeded": "SUCCEEDED",
                "Failed": "FAILED",
                "TimedOut": "TIMED_OUT",
                "Cancelled": "CANCELLED",
                "Stopped": "STOPPED",
            }[next(s for s in ("Succeeded", "Failed", "TimedOut", "Cancelled", "Stopped") if t.endswith(s))]
        elif retry and "NextAttemptDelaySeconds" in retry:
            row["status"] = "PENDING"
        # The error column is the operation's outcome: a retried error is gone once it succeeds.
        payload = (details.get("Error") or {}).get("Payload")
        if isinstance(payload, dict):
            row["error"] = f"{payload.get('ErrorType', '')}: {payload.get('ErrorMessage', '')}".strip(": ")
        elif row["status"] == "SUCCEEDED":
            row["error"] = ""
    for row in ops.values():
        row["duration"] = round(row["end"] - row["start"], 3) if row["end"] is not None else ""
        row["start"] = _iso(row["start"])
        row["end"] = _iso(row["end"]) if row["end"] is not None else ""
    return list(ops.values())


def write_csv(db: Database, arn: str, out: IO[str]) -> None:
    fields = ["name", "type", "sub_type", "attempts", "start", "end", "duration", "status", "error"]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in operation_rows(list(iter_history(db, arn))):
        writer.writerow(row)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ExportFilter:
    function: str | None = None
    status: str | None = None
    since_ms: int | None = None


def _filtered(q: Any, flt: ExportFilter) -> Any:
    if flt.function:
        q = q.where(Execution.function_name == flt.function)
    if flt.status:
        q = q.where(Execution.status == flt.status)
    if flt.since_ms is not None:
        q = q.where(Execution.start_ms >= flt.since_ms)
    return q


def matching_arns(db: Database, flt: ExportFilter) -> Iterator[str]:
    """ARNs matching the filter, oldest first, read in pages (keyset on start, id)."""
    last: tuple[int, str] | None = None
    while True:
        with db.read() as s:
            q = _filtered(select(Execution.arn, Execution.start_ms, Execution.execution_id), flt)
            if last is not None:
                q = q.where(
                    (Execution.start_ms > last[0])
                    | ((Execution.start_ms == last[0]) & (Execution.execution_id > last[1]))
                )
            rows = s.execute(q.order_by(Execution.start_ms, Execution.execution_id).limit(500)).all()
        if not rows:
            return
        for arn, _start, _eid in rows:
            yield arn
        last = (rows[-1][1], rows[-1][2])


def count_matching(db: Database, flt: ExportFilter) -> int:
    from sqlalchemy import func

    with db.read() as s:
        return int(s.scalar(_filtered(select(func.count()).select_from(Execution), flt)) or 0)


def export_bulk(
    db: Database, arns: Iterable[str], path: Path, fmt: str, progress: Callable[[str], None] | None = None
) -> int:
    """Write many histories to ``path`` (``zip`` or ``ndjson``), one at a time."""
    count = 0
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            manifest = []
            for arn in arns:
                name = f"{ExecutionArn.parse(arn).execution_id}.json"
                zf.writestr(name, json.dumps(history_document(db, arn), indent=2, ensure_ascii=False) + "\n")
                manifest.append({"DurableExecutionArn": arn, "File": name})
                count += 1
                if progress:
                    progress(arn)
            zf.writestr("manifest.json", json.dumps({"Executions": manifest}, indent=2) + "\n")
    elif fmt == "ndjson":
        with path.open("w", encoding="utf-8") as out:
            for arn in arns:
                out.write(json.dumps(history_document(db, arn), ensure_ascii=False) + "\n")
                count += 1
                if progress:
                    progress(arn)
    else:
        raise ValueError(f"bulk export writes zip or ndjson, not {fmt!r}")
    return count


# --- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedHistory:
    arn: ExecutionArn
    events: tuple[StoredEvent, ...]


def _refuse(where: str, why: str) -> ImportRefused:
    return ImportRefused(f"{where}: {why}")


def _ts_ms(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise _refuse(where, "a timestamp must be a number of seconds or an ISO-8601 string")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise _refuse(where, "timestamp is not a finite number")
        ms = round(value * 1000)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _refuse(where, f"timestamp {value[:40]!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise _refuse(where, "timestamp has no time zone")
        ms = round(parsed.timestamp() * 1000)
    else:
        raise _refuse(where, "a timestamp must be a number of seconds or an ISO-8601 string")
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise _refuse(where, "timestamp is outside 2000-2200")
    return ms


def parse_history(doc: Any, where: str, arn: str | None = None, source: str | None = None) -> ImportedHistory:
    """Validate one history document completely; raises ImportRefused. ``source`` says
    where it came from (shown with the read-only copy); ``where`` names it in errors."""
    if not isinstance(doc, dict):
        raise _refuse(where, "expected a JSON object with an Events list")
    events = doc.get("Events")
    if not isinstance(events, list) or not events:
        raise _refuse(where, "Events must be a non-empty list")
    if len(events) > MAX_EVENTS:
        raise _refuse(where, f"more than {MAX_EVENTS} events")
    text_arn = doc.get("DurableExecutionArn", arn)
    if not isinstance(text_arn, str):
        raise _refuse(
            where,
            "the file names no execution: pass the execution ARN (--arn) for histories saved "
            "from `aws lambda get-durable-execution-history`",
        )
    try:
        parsed_arn = ExecutionArn.parse(text_arn)
    except InvalidParameterValueException as exc:
        raise _refuse(where, exc.message) from None
    stored: list[StoredEvent] = []
    last_ts = 0
    for i, e in enumerate(events):
        at = f"{where}: event {i + 1}"
        if not isinstance(e, dict):
            raise ImportRefused(f"{at}: expected an object")
        t = e.get("EventType")
        if not isinstance(t, str) or t not in KNOWN_EVENTS:
            raise ImportRefused(f"{at}: unknown EventType {str(t)[:60]!r}")
        details_key = f"{t}Details"
        misplaced = [k for k in e if k.endswith("Details") and k != details_key]
        if misplaced:
            raise ImportRefused(f"{at} ({t}): {misplaced[0]} does not belong to a {t} event")
        # Its shape first, so that nothing below reads a field of the wrong type.
        try:
            check_event(e)
        except ShapeError as exc:
            raise ImportRefused(f"{at} ({t}): {exc}") from None
        if e.get("EventId") != i + 1 or isinstance(e.get("EventId"), bool):
            raise ImportRefused(f"{at}: EventId must be {i + 1} (events numbered 1..n without gaps)")
        if i == 0 and t != "ExecutionStarted":
            raise ImportRefused(f"{at}: a history starts with ExecutionStarted")
        ts = _ts_ms(e.get("EventTimestamp"), at)
        if ts < last_ts:
            raise ImportRefused(f"{at}: EventTimestamp goes backwards")
        last_ts = ts
        details = e.get(details_key, {})
        if t != "InvocationCompleted" and not isinstance(e.get("Id"), str):
            raise ImportRefused(f"{at} ({t}): Id is required")
        details = dict(details)
        for field in _TS_DETAILS.get(t, ()):
            if field in details:
                details[field] = _ts_ms(details[field], f"{at}: {field}")
        body = {k: e[k] for k in ("SubType", "Id", "Name", "ParentId") if k in e}
        body[details_key] = details
        extra = None
        if i == 0:
            extra = {
                "Arn": str(parsed_arn),
                "FunctionName": parsed_arn.function,
                "FunctionVersion": parsed_arn.version,
                "ExecutionName": parsed_arn.name,
                "RetentionDays": 3650,
                "Imported": True,
                "ImportedFrom": source or f"imported from {where}",
            }
            if e.get("Id") != parsed_arn.execution_id:
                raise ImportRefused(
                    f"{at}: ExecutionStarted Id {str(e.get('Id'))[:80]!r} is not the ARN's execution id"
                )
        stored.append(StoredEvent(0, parsed_arn.execution_id, i + 1, t, e.get("Id"), ts, body, extra))
    _check_projectable(stored, where)
    return ImportedHistory(parsed_arn, tuple(stored))


def _check_projectable(events: list[StoredEvent], where: str) -> None:
    """Events must make sense for the operation they name (what the projector needs)."""
    started: set[str] = set()
    needs_start = ("Wait", "Callback", "ChainedInvoke")
    closed = False
    for ev in events:
        t = ev.event_type
        if closed and t != "InvocationCompleted":
            raise ImportRefused(f"{where}: event {ev.event_id} ({t}) comes after the execution closed")
        if t in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"):
            closed = True
        elif t.endswith("Started") and t != "ExecutionStarted":
            started.add(ev.op_id or "")
        elif t.startswith(needs_start) and not t.endswith("Started") and ev.op_id not in started:
            raise ImportRefused(
                f"{where}: event {ev.event_id} ({t}) for operation {str(ev.op_id)[:64]} that never started"
            )
        if t == "WaitStarted" and not isinstance(ev.details.get("ScheduledEndTimestamp"), int):
            raise ImportRefused(f"{where}: event {ev.event_id} WaitStarted needs ScheduledEndTimestamp")
        if t == "CallbackStarted" and not isinstance(ev.details.get("CallbackId"), str):
            raise ImportRefused(f"{where}: event {ev.event_id} CallbackStarted needs CallbackId")


def _read_limited(stream: IO[bytes], limit: int, where: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImportRefused(f"{where}: larger than {limit // (1024 * 1024)} MiB")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise ImportRefused(f"{where}: nested too deeply (no history nests more than a few levels)") from None
    except ValueError as exc:
        raise ImportRefused(f"{where}: not valid JSON ({str(exc)[:120]})") from None


def read_import_file(path: Path, arn: str | None = None) -> list[ImportedHistory]:
    """Parse and validate a whole file (JSON, NDJSON or zip) before anything is written."""
    where = path.name
    if not path.is_file():
        raise ImportRefused(f"{where}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImportRefused(f"{where}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with path.open("rb") as f:
        data = _read_limited(f, MAX_FILE_BYTES, where)
    try:
        whole = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        whole = None  # not one document: one history per line (bulk NDJSON)
    if whole is not None:
        return [parse_history(whole, where, arn)]
    histories = []
    for n, line in enumerate(data.splitlines(), 1):
        if line.strip():
            doc = _json(line, f"{where} line {n}")
            if isinstance(doc, dict) and "EventType" in doc:
                raise ImportRefused(
                    f"{where}: a file of single events names no execution; "
                    "import a --format json export or a bulk ndjson export"
                )
            histories.append(parse_history(doc, f"{where} line {n}", arn))
    if not histories:
        raise ImportRefused(f"{where}: empty file")
    return histories


def _read_zip(path: Path) -> list[ImportedHistory]:
    where = path.name
    histories = []
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise ImportRefused(f"{where}: more than {MAX_ZIP_ENTRIES} entries")
        total = 0
        for info in infos:
            name = PurePosixPath(info.filename)
            if (
                info.filename.startswith(("/", "\\"))
                or ".." in name.parts
                or "\\" in info.filename
                or ":" in info.filename
            ):
                raise ImportRefused(f"{where}: entry {info.filename[:100]!r} points outside the archive")
            if info.file_size > MAX_ENTRY_BYTES:
                raise ImportRefused(
                    f"{where}: entry {info.filename[:100]!r} is larger than {MAX_ENTRY_BYTES // (1024 * 1024)} MiB"
                )
            if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
                raise ImportRefused(
                    f"{where}: entry {info.filename[:100]!r} expands {MAX_ZIP_RATIO}x or more (zip bomb?)"
                )
            total += info.file_size
            if total > MAX_FILE_BYTES:
                raise ImportRefused(f"{where}: expands to more than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        for info in infos:
            if info.is_dir() or info.filename == "manifest.json" or not info.filename.endswith(".json"):
                continue
            with zf.open(info) as member:
                data = _read_limited(member, MAX_ENTRY_BYTES, f"{where}/{info.filename}")
            histories.append(parse_history(_json(data, f"{where}/{info.filename}"), f"{where}/{info.filename}"))
    if not histories:
        raise ImportRefused(f"{where}: the archive holds no histories")
    return histories


def import_histories(db: Database, histories: list[ImportedHistory]) -> list[str]:
    """Append every history in one transaction; refuses all if any execution exists."""
    seen = set()
    for h in histories:
        if h.arn.execution_id in seen:
            raise ImportRefused(f"{h.arn}: appears twice in the file")
        seen.add(h.arn.execution_id)
    with db.write() as conn:
        raw = Raw(conn)
        for h in histories:
            if raw.one("SELECT 1 FROM events WHERE execution_id = :e LIMIT 1", {"e": h.arn.execution_id}):
                raise ImportRefused(f"{h.arn}: an execution with this id is already in the store")
            if raw.one(
                "SELECT 1 FROM executions WHERE function_name = :f AND name = :n",
                {"f": h.arn.function, "n": h.arn.name},
            ):
                raise ImportRefused(f"{h.arn}: function {h.arn.function} already has an execution named {h.arn.name}")
        for h in histories:
            _append_imported(conn, h)
    return [str(h.arn) for h in histories]


def _append_imported(conn: Any, h: ImportedHistory) -> None:
    """Write the events as they were recorded (their own timestamps), then project them."""
    raw = Raw(conn)
    if raw.postgres:
        raw.one("SELECT pg_advisory_xact_lock(:k)", {"k": 0x64757261})
    ws = Workset(conn)
    projector = Projector(ws)
    for ev in h.events:
        row = raw.one(
            "INSERT INTO events (execution_id, event_id, event_type, op_id, ts_ms, body, extra) "
            "VALUES (:e, :i, :t, :o, :ts, :b, :x) RETURNING position",
            {
                "e": ev.execution_id,
                "i": ev.event_id,
                "t": ev.event_type,
                "o": ev.op_id,
                "ts": ev.ts_ms,
                "b": compact_json(ev.body),
                "x": compact_json(ev.extra) if ev.extra is not None else None,
            },
        )
        assert row is not None
        projector.apply(
            StoredEvent(row[0], ev.execution_id, ev.event_id, ev.event_type, ev.op_id, ev.ts_ms, ev.body, ev.extra)
        )
    ws.flush()
