"""A recorded history as the SDK's checkpointed operations: what a replay check starts from.

The replay check hands the handler the operations the execution had when its history
ended, exactly as ``GetDurableExecutionState`` would have returned them, so the SDK
replays them with its own code. Every source (a stored execution, a file saved from
``aws lambda get-durable-execution-history``, a Durascope export) is read through the
import validator (``recorder.transfer.parse_history``), so a history that Durascope
would refuse to import is refused here with the same message.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.arns import NAME_RE, ExecutionArn
from recorder.errors import ServiceError
from recorder.queries import iter_history
from recorder.store.db import Database
from recorder.store.events import StoredEvent
from recorder.store.vocabulary import TERMINAL_OPERATION
from recorder.transfer import (
    ImportedHistory,
    ImportRefused,
    parse_history,
    read_import_file,
)

STAND_IN_REGION, STAND_IN_ACCOUNT = "us-east-1", "000000000000"
TERMINAL = TERMINAL_OPERATION
_CLOSED_BY = {
    "ContextSucceeded": ("CONTEXT", "SUCCEEDED"),
    "ContextFailed": ("CONTEXT", "FAILED"),
    "WaitSucceeded": ("WAIT", "SUCCEEDED"),
    "WaitCancelled": ("WAIT", "CANCELLED"),
    "CallbackSucceeded": ("CALLBACK", "SUCCEEDED"),
    "CallbackFailed": ("CALLBACK", "FAILED"),
    "CallbackTimedOut": ("CALLBACK", "TIMED_OUT"),
    "ChainedInvokeSucceeded": ("CHAINED_INVOKE", "SUCCEEDED"),
    "ChainedInvokeFailed": ("CHAINED_INVOKE", "FAILED"),
    "ChainedInvokeTimedOut": ("CHAINED_INVOKE", "TIMED_OUT"),
    "ChainedInvokeStopped": ("CHAINED_INVOKE", "STOPPED"),
}
_STARTED_BY = {
    "ContextStarted": "CONTEXT",
    "StepStarted": "STEP",
    "WaitStarted": "WAIT",
    "CallbackStarted": "CALLBACK",
    "ChainedInvokeStarted": "CHAINED_INVOKE",
}
_EXECUTION_END = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionStopped": "STOPPED",
}
_DETAILS_KEY = {
    "CONTEXT": "ContextDetails",
    "STEP": "StepDetails",
    "CALLBACK": "CallbackDetails",
    "CHAINED_INVOKE": "ChainedInvokeDetails",
}


class SourceError(ValueError):
    """A source that cannot be replayed; the message says why."""


@dataclass(frozen=True)
class RecordedOperation:
    """One operation as the history left it, with where it sits in its parent."""

    op_id: str
    type: str
    sub_type: str | None
    name: str | None
    parent_id: str | None
    status: str
    position: int | None  # n in the SDK's id of the n-th operation of its parent; None if not the SDK's
    wire: dict[str, Any]  # the Operation structure (ms timestamps), as GetDurableExecutionState returns it


@dataclass(frozen=True)
class RecordedHistory:
    arn: str
    function: str
    status: str  # the execution's status when its history ended
    operations: tuple[RecordedOperation, ...]  # first-START order, the EXECUTION operation first

    @property
    def by_id(self) -> dict[str, RecordedOperation]:
        return {op.op_id: op for op in self.operations}


def sdk_operation_id(parent_id: str | None, position: int) -> str:
    """The id SDK 3.x gives the ``position``-th operation of a context (1-based); the
    root context's operations have no parent prefix."""
    text = f"{parent_id}-{position}" if parent_id else str(position)
    return hashlib.blake2b(text.encode()).hexdigest()[:64]


def _payload(envelope: Any) -> Any:
    return envelope.get("Payload") if isinstance(envelope, dict) else None


def fold(h: ImportedHistory) -> RecordedHistory:
    """The operations a history's events leave behind (the store's projector does the
    same for stored executions; this one keeps nothing but the SDK's view)."""
    ops: dict[str, dict[str, Any]] = {}
    status = "RUNNING"
    for ev in h.events:
        _apply(ops, ev)
        if ev.event_type in _EXECUTION_END:
            status = _EXECUTION_END[ev.event_type]
    children: dict[str | None, list[str]] = {}
    for op in ops.values():
        if op["Type"] != "EXECUTION":
            children.setdefault(op.get("ParentId"), []).append(op["Id"])
    positions: dict[str, int] = {}
    for parent, ids in children.items():
        wanted = set(ids)
        # Ids are positional hashes; the n-th child is found by trying n up to a bound a bit
        # past the children recorded (operations without a history of their own leave gaps).
        for n in range(1, 2 * len(ids) + 64):
            op_id = sdk_operation_id(parent, n)
            if op_id in wanted:
                positions[op_id] = n
                wanted.discard(op_id)
                if not wanted:
                    break
    recorded = tuple(
        RecordedOperation(
            op["Id"],
            op["Type"],
            op.get("SubType"),
            op.get("Name"),
            op.get("ParentId"),
            op["Status"],
            positions.get(op["Id"]),
            op,
        )
        for op in ops.values()
    )
    return RecordedHistory(str(h.arn), h.arn.function, status, recorded)


def _apply(ops: dict[str, dict[str, Any]], ev: StoredEvent) -> None:
    t = ev.event_type
    d = ev.details
    if t == "ExecutionStarted":
        ops[ev.op_id or ""] = {
            "Id": ev.op_id,
            "Type": "EXECUTION",
            "Status": "STARTED",
            "StartTimestamp": ev.ts_ms,
            "ExecutionDetails": {"InputPayload": _payload(d.get("Input"))},
        }
        return
    if t in _EXECUTION_END:
        op = ops.get(ev.op_id or "")
        if op is not None:
            op["Status"] = _EXECUTION_END[t]
            op["EndTimestamp"] = ev.ts_ms
        return
    if ev.op_id is None or t not in _STARTED_BY and t not in _CLOSED_BY and t not in ("StepSucceeded", "StepFailed"):
        return  # invocations, pauses: not operations
    op = ops.get(ev.op_id)
    if op is None:
        op_type = _STARTED_BY.get(t) or _CLOSED_BY.get(t, ("STEP",))[0]
        op = {"Id": ev.op_id, "Type": op_type, "Status": "STARTED", "StartTimestamp": ev.ts_ms}
        for key in ("ParentId", "Name", "SubType"):
            if ev.body.get(key):
                op[key] = ev.body[key]
        if op_type == "STEP":
            op["StepDetails"] = {"Attempt": 0}
        ops[ev.op_id] = op
    if t == "StepStarted":
        op["Status"] = "STARTED"
        op["StepDetails"].pop("NextAttemptTimestamp", None)
    elif t in ("StepSucceeded", "StepFailed"):
        sd = op["StepDetails"]
        retry = d.get("RetryDetails") or {}
        sd["Attempt"] = int(retry.get("CurrentAttempt", sd["Attempt"] + 1))
        if t == "StepSucceeded":
            sd["Result"] = _payload(d.get("Result"))
        else:
            sd["Error"] = _payload(d.get("Error"))
        delay = retry.get("NextAttemptDelaySeconds")
        if delay is not None:
            op["Status"] = "PENDING"
            sd["NextAttemptTimestamp"] = ev.ts_ms + int(delay) * 1000
        else:
            op["Status"] = "SUCCEEDED" if t == "StepSucceeded" else "FAILED"
            op["EndTimestamp"] = ev.ts_ms
        for key in ("Result", "Error"):
            if sd.get(key) is None:
                sd.pop(key, None)
    elif t == "WaitStarted":
        op["WaitDetails"] = {"ScheduledEndTimestamp": int(d["ScheduledEndTimestamp"])}
    elif t == "CallbackStarted":
        op["CallbackDetails"] = {"CallbackId": d.get("CallbackId")}
    elif t in _CLOSED_BY:
        op["Status"] = _CLOSED_BY[t][1]
        op["EndTimestamp"] = ev.ts_ms
        details_key = _DETAILS_KEY.get(op["Type"])
        if details_key:
            details = op.setdefault(details_key, {})
            value = _payload(d.get("Result")) if t.endswith("Succeeded") else _payload(d.get("Error"))
            if value is not None:
                details["Result" if t.endswith("Succeeded") else "Error"] = value


# --- sources ----------------------------------------------------------------------------------


def from_store(db: Database, arn: str) -> RecordedHistory:
    events = list(iter_history(db, arn))
    try:
        return fold(parse_history({"DurableExecutionArn": arn, "Events": events}, arn, arn))
    except ImportRefused as exc:
        raise SourceError(str(exc)) from None


def from_file(path: Path, arn: str | None = None) -> list[RecordedHistory]:
    """Every history in a Durascope export (JSON, NDJSON, zip) or in a file saved from
    ``aws lambda get-durable-execution-history``; that one names no execution, so ``arn``
    or, failing it, a stand-in made from the first event's Id names it."""
    try:
        return [fold(h) for h in read_import_file(path, arn or _stand_in_arn(path))]
    except ImportRefused as exc:
        raise SourceError(str(exc)) from None


def _stand_in_arn(path: Path) -> str | None:
    try:
        if path.stat().st_size > 64 * 1024 * 1024 or zipfile.is_zipfile(path):
            return None
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None  # the import reader says what is wrong with it
    if not isinstance(doc, dict) or "DurableExecutionArn" in doc or not isinstance(doc.get("Events"), list):
        return None
    first = doc["Events"][0] if doc["Events"] else None
    op_id = first.get("Id") if isinstance(first, dict) else None
    if not isinstance(op_id, str) or not NAME_RE.match(op_id):
        return None
    return str(ExecutionArn(STAND_IN_REGION, STAND_IN_ACCOUNT, "replay", "$LATEST", "history", op_id))


def load(source: str, db: Database | None, arn: str | None = None) -> list[RecordedHistory]:
    """SOURCE as the CLI takes it: a stored execution's ARN, or a file."""
    if source.startswith("arn:"):
        if db is None:
            raise SourceError(f"{source}: no store to read it from")
        try:
            return [from_store(db, source)]
        except ServiceError as exc:
            raise SourceError(f"{source}: {exc.message}") from None
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"{source}: neither a stored execution's ARN nor a file")
    return from_file(path, arn)
