"""Compare two executions (``/diff?a=ARN&b=ARN``): their operations side by side.

The SDK's operation ids are deterministic (a hash of the position in the code), so the same
id in two executions is the same place in the handler: rows pair operations by id, in the
order they started. The first divergence is the first row (in that order) where the two
differ in what ran: an operation only one of them has, a different name or type at the
same place, or a different outcome. Input, result (decoded), attempts and errors that
differ are marked on every row; durations are shown side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder.api import Durascope
from viewer.view_models.common import ViewError, arg_list
from viewer.view_models.execution import ExecutionView, OperationView, build_execution

COMPARED = ("input", "result", "attempts", "error")


@dataclass(frozen=True)
class Side:
    name: str | None
    type: str
    kind: str
    status: str
    attempts: int
    input: str | None
    result: str | None
    error: str | None
    duration_ms: int | None
    start_offset_ms: int  # since its execution started

    @classmethod
    def of(cls, op: OperationView, execution_start_ms: int) -> Side:
        return cls(op.name, op.type if not op.sub_type else f"{op.type}/{op.sub_type}", op.kind, op.shown_status,
                   len(op.attempts), op.input.text if op.input else None, op.result.text if op.result else None,
                   op.error.summary if op.error else None,
                   op.end_ms - op.start_ms if op.end_ms is not None else None, op.start_ms - execution_start_ms)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "status": self.status, "attempts": self.attempts,
                "input": self.input, "result": self.result, "error": self.error, "durationMs": self.duration_ms}


@dataclass(frozen=True)
class DiffRow:
    operation_id: str
    depth: int
    a: Side | None
    b: Side | None
    # Why the two diverge here (only in a, only in b, name, type, outcome), or None.
    reason: str | None
    differences: tuple[str, ...]  # of COMPARED

    @property
    def name(self) -> str | None:
        side = self.a or self.b
        return side.name if side else None

    def to_json(self) -> dict[str, Any]:
        return {"operationId": self.operation_id, "name": self.name, "reason": self.reason,
                "differences": list(self.differences), "a": self.a.to_json() if self.a else None,
                "b": self.b.to_json() if self.b else None}


@dataclass(frozen=True)
class Divergence:
    operation_id: str
    name: str | None
    a: str | None
    b: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"operationId": self.operation_id, "name": self.name, "a": self.a, "b": self.b,
                "reason": self.reason}


@dataclass(frozen=True)
class ExecutionSide:
    arn: str
    name: str
    function: str
    status: str
    duration_ms: int
    input: str | None
    result: str | None
    error: str | None

    @classmethod
    def of(cls, v: ExecutionView) -> ExecutionSide:
        return cls(v.arn, v.name, v.function, v.status, v.duration_ms, v.input.text if v.input else None,
                   v.result.text if v.result else None, v.error.summary if v.error else None)


@dataclass(frozen=True)
class DiffPage:
    a: ExecutionSide
    b: ExecutionSide
    rows: tuple[DiffRow, ...]
    first_divergence: Divergence | None

    def to_json(self) -> dict[str, Any]:
        def side(s: ExecutionSide) -> dict[str, Any]:
            return {"executionArn": s.arn, "name": s.name, "function": s.function, "status": s.status,
                    "durationMs": s.duration_ms, "input": s.input, "result": s.result, "error": s.error}

        return {"a": side(self.a), "b": side(self.b),
                "firstDivergence": self.first_divergence.to_json() if self.first_divergence else None,
                "rows": [r.to_json() for r in self.rows]}


def _aligned(a_ops: list[OperationView], b_ops: list[OperationView]) -> list[str]:
    """Operation ids of both, each once: a's order, with b's own operations placed after the
    operation that precedes them in b."""
    in_a = {o.id for o in a_ops}
    after: dict[str | None, list[str]] = {}
    previous: str | None = None
    for o in b_ops:
        if o.id in in_a:
            previous = o.id
        else:
            after.setdefault(previous, []).append(o.id)
    order = list(after.get(None, []))
    for o in a_ops:
        order.append(o.id)
        order.extend(after.get(o.id, []))
    return order


def _reason(a: Side | None, b: Side | None) -> tuple[str | None, str | None, str | None]:
    """Why two operations at one place diverge, and each side's value of what differs."""
    if b is None:
        return "only in a", a.name if a else None, None
    if a is None:
        return "only in b", None, b.name
    if a.name != b.name:
        return "name", a.name, b.name
    if a.type != b.type:
        return "type", a.type, b.type
    if a.status != b.status:
        return "outcome", a.status, b.status
    return None, None, None


def compare(a: ExecutionView, b: ExecutionView) -> DiffPage:
    a_ops = [o for o in a.operations if o.type != "EXECUTION"]
    b_ops = [o for o in b.operations if o.type != "EXECUTION"]
    by_a = {o.id: o for o in a_ops}
    by_b = {o.id: o for o in b_ops}
    rows: list[DiffRow] = []
    first: Divergence | None = None
    for op_id in _aligned(a_ops, b_ops):
        oa, ob = by_a.get(op_id), by_b.get(op_id)
        sa = Side.of(oa, a.start_ms) if oa else None
        sb = Side.of(ob, b.start_ms) if ob else None
        reason, va, vb = _reason(sa, sb)
        differences = tuple(f for f in COMPARED if sa and sb and getattr(sa, f) != getattr(sb, f))
        depth = (oa or ob).depth if (oa or ob) else 0
        row = DiffRow(op_id, depth, sa, sb, reason, differences)
        rows.append(row)
        if reason and first is None:
            first = Divergence(op_id, row.name, va, vb, reason)
    return DiffPage(ExecutionSide.of(a), ExecutionSide.of(b), tuple(rows), first)


def parse_pair(args: Any) -> tuple[str, str]:
    """``a`` and ``b``, or two ``arn`` values (the executions list's checkboxes)."""
    a, b = (args.get("a") or "").strip(), (args.get("b") or "").strip()
    if not a and not b:
        arns = [s.strip() for s in arg_list(args)("arn") if s.strip()]
        if len(arns) != 2:
            raise ViewError(f"Select exactly two executions to compare ({len(arns)} selected)")
        a, b = arns
    if not a or not b:
        raise ViewError("Give two executions to compare: /diff?a=ARN&b=ARN")
    return a, b


def build_diff(ds: Durascope, args: Any) -> DiffPage:
    a, b = parse_pair(args)
    return compare(build_execution(ds, a), build_execution(ds, b))


def last_success_arn(ds: Durascope, arn: str) -> str:
    """The newest SUCCEEDED execution of the same function as ``arn`` (404 when none)."""
    from sqlalchemy import select

    from recorder.store.models import Execution

    with ds.db.read() as s:
        function = s.execute(select(Execution.function_name).where(Execution.arn == arn)).scalar_one_or_none()
        if function is None:
            raise ViewError(f"No execution {arn[:300]}", 404)
        found = s.execute(select(Execution.arn).where(Execution.function_name == function,
                                                      Execution.status == "SUCCEEDED")
                          .order_by(Execution.start_ms.desc()).limit(1)).scalar_one_or_none()
    if found is None:
        raise ViewError(f"Function {function} has no successful execution to compare with yet", 404)
    return found
