"""One module per operation type, registered by type (after the SDK's ``operation`` package).

Each module holds what the engine does with its type: checkpoint planning (``plan``), the
event a due timer appends (``timer_event``), and wire rendering (``render``). How the
type's events fold into the projections is in ``recorder.store.projections`` (the store
layer imports nothing from the engine).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from recorder.engine.operations.base import OperationSpec
from recorder.engine.operations.callback import CALLBACK
from recorder.engine.operations.chained_invoke import CHAINED_INVOKE
from recorder.engine.operations.context import CONTEXT
from recorder.engine.operations.execution import EXECUTION
from recorder.engine.operations.step import STEP
from recorder.engine.operations.wait import WAIT
from recorder.store.events import NewEvent
from recorder.store.workset import OpRow
from recorder.wire import ts_ms

OPERATIONS: dict[str, OperationSpec] = {
    op.type: op for op in (EXECUTION, CONTEXT, STEP, WAIT, CALLBACK, CHAINED_INVOKE)
}


def timer_event(kind: str, row: OpRow) -> NewEvent | None:
    """The event a due op timer of ``kind`` appends for ``row``; None when it has nothing to do."""
    op_type = OPERATIONS.get(row.type)
    return op_type.timer_event(kind, row) if op_type is not None else None


def operation_to_wire(row: OpRow, ts: Callable[[int], Any] = ts_ms) -> dict[str, Any]:
    """Render an ``operations`` row as the API's Operation structure."""
    out: dict[str, Any] = {"Id": row.op_id, "Type": row.type, "Status": row.status}
    if row.parent_id:
        out["ParentId"] = row.parent_id
    if row.name:
        out["Name"] = row.name
    if row.sub_type:
        out["SubType"] = row.sub_type
    out["StartTimestamp"] = ts(row.start_ms)
    if row.end_ms is not None:
        out["EndTimestamp"] = ts(row.end_ms)
    op_type = OPERATIONS.get(row.type)
    if op_type is not None:
        details = json.loads(row.details_json) if row.details_json else {}
        error = json.loads(row.error_json) if row.error_json else None
        op_type.render(row, out, details, error, ts)
    return out


__all__ = ["OPERATIONS", "OperationSpec", "operation_to_wire", "timer_event"]
