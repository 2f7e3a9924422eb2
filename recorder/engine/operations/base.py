"""What an operation type is to the engine: how a checkpoint update of it is planned,
what its timers append when due, and how its row is rendered on the wire.

Each type's module (``step``, ``wait``, ...) builds one ``OperationSpec``; the package
registers them by type. How its events fold into the projections is the store's part
(``recorder.store.projections``), since the store imports nothing from the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recorder.errors import InvalidParameterValueException
from recorder.store.events import NewEvent, OpIdentity
from recorder.store.workset import ExecRow, OpRow
from recorder.wire import Update

if TYPE_CHECKING:
    from recorder.engine.transaction import Core


@dataclass
class PlanContext:
    """One update being planned: where it is in its checkpoint, and what planning may need."""

    core: Core
    execution: ExecRow
    now: int
    where: str
    # Chained executions to start once the batch is valid: (op id, function, input, execution id).
    children: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def refuse(self, reason: str) -> InvalidParameterValueException:
        return InvalidParameterValueException(f"{self.where}: {reason}")


# (context, update, identity, current status or None, attempts so far) -> (new status, events)
Plan = Callable[[PlanContext, Update, OpIdentity, "str | None", int], "tuple[str, list[NewEvent]]"]
# (timer kind, op row) -> the event the due timer appends, or None when it has nothing to do
TimerEvent = Callable[[str, OpRow], "NewEvent | None"]
# (op row, wire operation to complete, details_json parsed, error parsed, timestamp rendering)
Render = Callable[[OpRow, dict[str, Any], dict[str, Any], Any, Callable[[int], Any]], None]


def _no_timer(kind: str, row: OpRow) -> NewEvent | None:
    return None


@dataclass(frozen=True, kw_only=True)
class OperationSpec:
    type: str
    plan: Plan
    render: Render
    timer_event: TimerEvent = _no_timer
    # Actions after which the op has made one more attempt (STEP's Attempt).
    attempt_actions: frozenset[str] = frozenset()
    # Whether one checkpoint may START the op and then finish it (a step or context that
    # ran to its end between two checkpoints).
    start_and_finish_in_one_checkpoint: bool = False


def identity(op: OpRow) -> OpIdentity:
    return OpIdentity(op.op_id, op.type, op.sub_type, op.name, op.parent_id)


def update_error(u: Update) -> dict[str, Any] | None:
    return u.error.to_dict() if u.error is not None else None


def outcome_details(out: dict[str, Any], row: OpRow, error: Any) -> dict[str, Any]:
    """Result and Error, when the row holds them, into ``out``."""
    if row.result is not None:
        out["Result"] = row.result
    if error is not None:
        out["Error"] = error
    return out
