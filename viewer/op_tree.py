"""The operations of an execution as a tree, for the timeline and the graph: children in
start order, the state each is drawn in, the failing path, and counts per state.

Both views draw the same states in the same colours (``viewer.css``: ``.st-<state>``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from viewer.view_models.common import plural
from viewer.view_models.execution import ExecutionView, OperationView

# Drawing order of the legend, and the words for each state.
STATES = ("succeeded", "failed", "retrying", "running", "waiting", "cancelled")
_WAITS = frozenset({"WAIT", "CALLBACK", "CHAINED_INVOKE"})
# What a group's children are called.
_NOUNS = {"map": ("iteration", "iterations"), "parallel": ("branch", "branches")}


def state(op: OperationView) -> str:
    """How an operation is drawn: succeeded, failed, retrying, running, waiting, cancelled."""
    if op.closed_by:
        return "cancelled"
    if op.status == "SUCCEEDED":
        return "succeeded"
    if op.status in ("FAILED", "TIMED_OUT"):
        return "failed"
    if op.status in ("STOPPED", "CANCELLED"):
        return "cancelled"
    if op.status == "PENDING" and op.type == "STEP":
        return "retrying"
    return "waiting" if op.type in _WAITS else "running"


def count_text(counts: Counter[str]) -> str:
    """``8 succeeded · 2 failed``, in the legend's order."""
    return " · ".join(f"{counts[s]:,} {s}" for s in STATES if counts.get(s))


@dataclass
class OpTree:
    view: ExecutionView
    by_id: dict[str, OperationView] = field(default_factory=dict)
    children: dict[str | None, list[OperationView]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # failed operations and every parent of one
    states: dict[str, str] = field(default_factory=dict)  # how each operation is drawn
    sizes: dict[str, int] = field(default_factory=dict)  # operations below each one

    @classmethod
    def of(cls, view: ExecutionView) -> OpTree:
        tree = cls(view)
        tree.by_id = {o.id: o for o in view.operations}
        tree.states = {o.id: state(o) for o in view.operations}
        for o in view.operations:  # tree order: children come in start order
            parent = o.parent_id if o.parent_id in tree.by_id else None
            tree.children.setdefault(parent, []).append(o)
        for o in reversed(view.operations):  # children before their parent
            tree.sizes[o.id] = sum(1 + tree.sizes[k.id] for k in tree.children.get(o.id, ()))
        for o in view.operations:
            if tree.states[o.id] == "failed":
                cur: OperationView | None = o
                while cur is not None and cur.id not in tree.failing:
                    tree.failing.add(cur.id)
                    cur = tree.by_id.get(cur.parent_id or "")
        return tree

    def kids(self, op_id: str | None) -> list[OperationView]:
        return self.children.get(op_id, [])

    def counts(self, ops: list[OperationView]) -> Counter[str]:
        return Counter(self.states[o.id] for o in ops)

    def group_summary(self, op: OperationView) -> str:
        """``10 iterations: 8 succeeded · 2 failed`` for a group."""
        kids = self.kids(op.id)
        one, many = _NOUNS.get(op.kind, ("child", "children"))
        return f"{plural(len(kids), one, many)}: {count_text(self.counts(kids))}"

    def descendants(self, op_id: str) -> int:
        return self.sizes.get(op_id, 0)

    def plain(self, op: OperationView) -> bool:
        """A finished leaf that never failed: what long loops are made of."""
        return self.states[op.id] == "succeeded" and op.id not in self.children and not op.failed
