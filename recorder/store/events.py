"""History events in the AWS GetDurableExecutionHistory shape (docs/protocol.md#history-events).

``NewEvent`` is what the control plane decides to append; ``recorder.store.log``
numbers and stores it, ``recorder.store.projector`` folds it into the projections.
Engine records (``history=False``) are state changes AWS keeps out of the history
(an invocation starting, a retry becoming READY, a callback heartbeat); they get a
global position but no EventId and are never returned as history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from recorder.store.vocabulary import OPEN_EXECUTION, EventType, ExecutionStatus

# Engine records: state changes AWS keeps out of the history (no EventId).
ENGINE_RECORDS = frozenset(
    {
        EventType.INVOCATION_STARTED,
        EventType.STEP_READY,
        EventType.CALLBACK_HEARTBEAT,
        EventType.PAUSE_REQUESTED,
        EventType.PAUSE_CANCELLED,
        EventType.CALLBACK_RECEIVED,
    }
)
OPEN_STATUSES = OPEN_EXECUTION

# The event that closes an execution, and the status it leaves.
TERMINAL_EXECUTION_EVENTS: dict[str, ExecutionStatus] = {
    EventType.EXECUTION_SUCCEEDED: ExecutionStatus.SUCCEEDED,
    EventType.EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.EXECUTION_TIMED_OUT: ExecutionStatus.TIMED_OUT,
    EventType.EXECUTION_STOPPED: ExecutionStatus.STOPPED,
}


@dataclass(frozen=True)
class OpIdentity:
    """The fields every event of an operation copies from it (write-once)."""

    op_id: str
    type: str
    sub_type: str | None = None
    name: str | None = None
    parent_id: str | None = None

    def envelope(self) -> dict[str, Any]:
        env: dict[str, Any] = {}
        if self.sub_type:
            env["SubType"] = self.sub_type
        env["Id"] = self.op_id
        if self.name:
            env["Name"] = self.name
        if self.parent_id:
            env["ParentId"] = self.parent_id
        return env


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    op: OpIdentity | None
    details: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] | None = None

    @property
    def history(self) -> bool:
        return self.event_type not in ENGINE_RECORDS

    @property
    def op_id(self) -> str | None:
        return self.op.op_id if self.op else None

    def body(self) -> dict[str, Any]:
        if not self.history:
            return dict(self.details)
        body = self.op.envelope() if self.op else {}
        body[f"{self.event_type}Details"] = self.details
        return body


@dataclass(frozen=True)
class StoredEvent:
    # None for an event appended in a PostgreSQL write transaction still open: its position
    # is drawn when the transaction's writes are flushed (``recorder.store.log``).
    position: int | None
    execution_id: str
    event_id: int | None
    event_type: str
    op_id: str | None
    ts_ms: int
    body: dict[str, Any]
    extra: dict[str, Any] | None

    @property
    def details(self) -> dict[str, Any]:
        if self.event_id is None:
            return self.body
        details: dict[str, Any] = self.body.get(f"{self.event_type}Details", {})
        return details

    def to_history(self) -> dict[str, Any]:
        """The event as GetDurableExecutionHistory returns it (EventTimestamp in epoch ms)."""
        out: dict[str, Any] = {"EventType": self.event_type}
        details_key = f"{self.event_type}Details"
        for key in ("SubType",):
            if key in self.body:
                out[key] = self.body[key]
        out["EventId"] = self.event_id
        for key in ("Id", "Name", "ParentId"):
            if key in self.body:
                out[key] = self.body[key]
        out["EventTimestamp"] = self.ts_ms
        out[details_key] = self.body.get(details_key, {})
        return out


def compact_json(value: object) -> str:
    """JSON as the store keeps it: no spaces, non-ASCII characters as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def payload_envelope(payload: str | None) -> dict[str, Any]:
    return {"Payload": payload, "Truncated": False} if payload is not None else {"Truncated": False}


def error_envelope(error: dict[str, Any] | None) -> dict[str, Any]:
    return {"Payload": error, "Truncated": False} if error is not None else {"Truncated": False}


def strip_execution_data(event: dict[str, Any]) -> dict[str, Any]:
    """IncludeExecutionData=false: every payload envelope keeps its key, loses its Payload."""
    details_key = f"{event['EventType']}Details"
    details = event.get(details_key)
    if not isinstance(details, dict):
        return event
    new_details = {}
    for key, value in details.items():
        if key in ("Input", "Result", "Error", "Reason") and isinstance(value, dict):
            new_details[key] = {"Truncated": True}
        else:
            new_details[key] = value
    return {**event, details_key: new_details}
