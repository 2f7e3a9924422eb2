"""CHAINED_INVOKE operations in the projections."""

from __future__ import annotations

from recorder.store.events import StoredEvent
from recorder.store.projections.base import Handler, close_op, dumps, existing_op, new_op, set_outcome
from recorder.store.workset import ExecRow, OpRow, Workset

_CLOSED = {
    "ChainedInvokeSucceeded": "SUCCEEDED",
    "ChainedInvokeFailed": "FAILED",
    "ChainedInvokeTimedOut": "TIMED_OUT",
    "ChainedInvokeStopped": "STOPPED",
}


def _started(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    d = ev.details
    op = new_op(ws, ev, execution, "CHAINED_INVOKE", "STARTED")
    op.details_json = dumps({k: d[k] for k in ("FunctionName", "DurableExecutionArn", "ExecutedVersion",
                                               "TenantId") if k in d})
    return op


def _closed(ws: Workset, ev: StoredEvent, execution: ExecRow) -> OpRow:
    op = existing_op(ws, ev)
    close_op(op, ev, _CLOSED[ev.event_type])
    set_outcome(op, ev, ev.event_type == "ChainedInvokeSucceeded")
    return op


HANDLERS: dict[str, Handler] = {"ChainedInvokeStarted": _started, **{t: _closed for t in _CLOSED}}
