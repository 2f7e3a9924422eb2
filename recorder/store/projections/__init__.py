"""Per operation type, how its events fold into the projections, registered by event type.

The store keeps these (the engine holds each type's checkpoint planning, timer events and
wire rendering in ``recorder.engine.operations``): ``recorder.store.log``'s rebuild and the
live path both fold events here, and the store imports nothing from the engine.
"""

from __future__ import annotations

from recorder.store.projections import callback, chained_invoke, context, execution, step, wait
from recorder.store.projections.base import Handler

# Execution-level events first; each event type belongs to exactly one operation type.
HANDLERS: dict[str, Handler] = {}
for _module in (execution, context, step, wait, callback, chained_invoke):
    _overlap = HANDLERS.keys() & _module.HANDLERS.keys()
    assert not _overlap, f"event types projected twice: {_overlap}"
    HANDLERS.update(_module.HANDLERS)

execution_started = execution.started

__all__ = ["HANDLERS", "Handler", "execution_started"]
