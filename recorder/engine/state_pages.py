"""State paging for the SDK: GetDurableExecutionState and the operations an invocation starts with."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from recorder.arns import ExecutionArn
from recorder.engine import tokens
from recorder.engine.operations import operation_to_wire
from recorder.engine.transaction import Core
from recorder.errors import InvalidParameterValueException, ResourceNotFoundException, invalid_token
from recorder.store.models import EngineState, Execution
from recorder.store.sql import Raw
from recorder.store.vocabulary import TERMINAL_OPERATION, OperationType
from recorder.store.workset import OP_COLS, OpRow
from recorder.wire import ts_ms

STATE_PAGE_BYTES = 5 * 1024 * 1024


def get_state(
    core: Core, arn: str, token: Any, marker: Any = None, max_items: Any = None, ts: Callable[[int], Any] = ts_ms
) -> dict[str, Any]:
    execution_id = ExecutionArn.parse(arn).execution_id
    if not isinstance(token, str) or not token:
        raise invalid_token("CheckpointToken is required")
    limit = _max_items(max_items, 100, 1000)
    with core.db.read() as s:
        state = s.get(EngineState, execution_id)
        known = s.get(Execution, execution_id)
        if state is None or known is None or known.arn != arn:
            raise ResourceNotFoundException(f"Durable execution not found: {arn}")
        if state.token is None or token != state.token:
            raise invalid_token()
        start = tokens.parse_state_marker(marker, token) if marker else 0
        ops, next_seq = navigable_page(Raw(s.connection()), execution_id, start, limit)
    out: dict[str, Any] = {"Operations": [render_op(o, ts) for o in ops]}
    if next_seq is not None:
        out["NextMarker"] = tokens.state_marker(token, next_seq)
    return out


def _max_items(value: Any, default: int, cap: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValueException("MaxItems must be a whole number") from exc
    if n < 1:
        raise InvalidParameterValueException("MaxItems must be at least 1")
    return min(n, cap)


def navigable_page(
    raw: Raw, execution_id: str, start_seq: int, limit: int, max_bytes: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Ops in first-START order from ``start_seq``, without the children of closed
    contexts that do not replay them (docs/protocol.md#state). Returns (page, next seq or None)."""
    rows = [
        OpRow(*r)
        for r in raw.all(
            f"SELECT {', '.join(OP_COLS)} FROM operations WHERE execution_id = :eid ORDER BY seq", {"eid": execution_id}
        )
    ]
    by_id = {r.op_id: r for r in rows}
    hidden: dict[str, bool] = {}

    def is_hidden(op: Any) -> bool:
        parent_id = op.parent_id
        if not parent_id:
            return False
        if parent_id in hidden:
            return hidden[parent_id]
        parent = by_id.get(parent_id)
        result = False
        if parent is not None:
            closed_prunes = (
                parent.type == OperationType.CONTEXT
                and parent.status in TERMINAL_OPERATION
                and not parent.replay_children
            )
            result = closed_prunes or is_hidden(parent)
        hidden[parent_id] = result
        return result

    page: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        if row.seq < start_seq or is_hidden(row):
            continue
        if len(page) >= limit:
            return page, row.seq
        wire = operation_to_wire(row)
        if max_bytes is not None:
            size += len(json.dumps(wire))
            if page and size > max_bytes:
                return page, row.seq
        page.append(wire)
    return page, None


_TS_FIELDS = ("StartTimestamp", "EndTimestamp")
_STEP_TS = "NextAttemptTimestamp"
_WAIT_TS = "ScheduledEndTimestamp"


def render_op(op: dict[str, Any], ts: Callable[[int], Any]) -> dict[str, Any]:
    """A wire operation (timestamps in ms) with its timestamps rendered by ``ts``."""
    if ts is ts_ms:
        return op
    out = dict(op)
    for key in _TS_FIELDS:
        if key in out:
            out[key] = ts(out[key])
    if "StepDetails" in out and _STEP_TS in out["StepDetails"]:
        out["StepDetails"] = {**out["StepDetails"], _STEP_TS: ts(out["StepDetails"][_STEP_TS])}
    if "WaitDetails" in out and _WAIT_TS in out["WaitDetails"]:
        out["WaitDetails"] = {**out["WaitDetails"], _WAIT_TS: ts(out["WaitDetails"][_WAIT_TS])}
    return out


def render_ops(response: dict[str, Any], ts: Callable[[int], Any]) -> dict[str, Any]:
    """A checkpoint response with its operations' timestamps rendered by ``ts``."""
    state = response["NewExecutionState"]
    out = dict(response)
    out["NewExecutionState"] = {**state, "Operations": [render_op(o, ts) for o in state["Operations"]]}
    return out
