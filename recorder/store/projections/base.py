"""What every operation type's projection shares: creating, finding and closing op rows.

Everything a projection holds must be derivable from the event and its ``extra``:
never read the clock or engine state here (``recorder.store.projector``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from recorder.store.events import StoredEvent, compact_json
from recorder.store.vocabulary import OperationStatus
from recorder.store.workset import ExecRow, OpRow, Workset

# An event's fold into the projections: the operation row it changed, to be written back
# (None when the handler wrote what it changed itself, or changed no operation).
Handler = Callable[[Workset, StoredEvent, ExecRow], "OpRow | None"]


def payload(envelope: Any) -> Any:
    return envelope.get("Payload") if isinstance(envelope, dict) else None


def error_json(envelope: Any) -> str | None:
    err = payload(envelope)
    return compact_json(err) if err is not None else None


def details(op: OpRow) -> dict[str, Any]:
    return json.loads(op.details_json) if op.details_json else {}


def find_op(ws: Workset, ev: StoredEvent) -> OpRow | None:
    assert ev.op_id is not None
    return ws.op(ev.execution_id, ev.op_id)


def existing_op(ws: Workset, ev: StoredEvent) -> OpRow:
    op = find_op(ws, ev)
    assert op is not None
    return op


def new_op(ws: Workset, ev: StoredEvent, execution: ExecRow, op_type: str, status: str) -> OpRow:
    body = ev.body
    assert ev.op_id is not None
    op = OpRow(
        execution_id=ev.execution_id,
        op_id=ev.op_id,
        seq=execution.op_count,
        type=op_type,
        sub_type=body.get("SubType"),
        name=body.get("Name"),
        parent_id=body.get("ParentId"),
        status=status,
        start_ms=ev.ts_ms,
        end_ms=None,
        attempt=0,
        next_attempt_ms=None,
        result=None,
        error_json=None,
        replay_children=None,
        details_json=None,
    )
    execution.op_count += 1
    ws.add_op(op)
    return op


def op_or_new(ws: Workset, ev: StoredEvent, execution: ExecRow, op_type: str) -> OpRow:
    return find_op(ws, ev) or new_op(ws, ev, execution, op_type, OperationStatus.STARTED)


def close_op(op: OpRow, ev: StoredEvent, status: str) -> None:
    op.status = status
    op.end_ms = ev.ts_ms
    op.next_attempt_ms = None


def set_outcome(op: OpRow, ev: StoredEvent, succeeded: bool) -> None:
    """Result on success, Error otherwise, from the event's envelopes."""
    if succeeded:
        op.result = payload(ev.details.get("Result"))
    else:
        op.error_json = error_json(ev.details.get("Error"))
