"""The execution graph: the operation tree drawn as boxes, the way the Step Functions
console draws a state machine run, as server-side SVG (``templates/_graph.html``).

Each context's operations run top to bottom, one box each, joined by arrows; a child
context is a box around its operations; a parallel's branches and a map's iterations sit
side by side inside the parallel or map. A box is coloured by how its operation ended (the
timeline's colours) and a failed one is solid red, with every box around it outlined red:
the failing path. A wait-for-callback is one box (its callback), and a context of a single
step (a map iteration) is that step's box.

Readable at 1,000 operations and more: in a run of finished steps only the first and the
last are drawn, with one box saying how many ran between them; a parallel or map draws at
most ``MAX_COLUMNS`` branches or iterations (failed and unfinished ones first) and one box
with the counts per state of the rest; past ``MAX_BOXES`` boxes, whole contexts are drawn
as one box with their counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from viewer.op_tree import OpTree, count_text, state
from viewer.view_models.common import format_duration, plural
from viewer.view_models.execution import ExecutionView, OperationView

BOX_W, BOX_H = 176, 44
GAP_Y = 26  # between boxes of a sequence (room for the arrow)
GAP_X = 12  # between the columns of a parallel or map
PAD = 10  # inside a group
HEAD = 26  # a group's header
TERMINAL_W, TERMINAL_H = 120, 26
MAX_COLUMNS = 4
MAX_BOXES = 160
RUN_KEPT = 4  # a run of plain finished steps longer than this is summed up
TITLE_CHARS = 25
MAX_SEQUENCE = 24  # boxes one context draws top to bottom
_SIDE_BY_SIDE = frozenset({"parallel", "map"})


@dataclass(frozen=True)
class Box:
    """A drawn box: an operation (``op_id``), a group around operations (``group``), a box
    standing for several (``summed``) or the start and end (``terminal``)."""

    x: float
    y: float
    w: float
    h: float
    kind: str  # leaf, group, summed, terminal
    state: str
    title: str
    subtitle: str
    op_id: str | None = None
    failing: bool = False
    tooltip: str = ""


@dataclass(frozen=True)
class Edge:
    x1: float
    y1: float
    x2: float
    y2: float
    failing: bool = False


@dataclass(frozen=True)
class Graph:
    width: float
    height: float
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    operations: int
    note: str | None


def _cut(text: str, n: int = TITLE_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Block:
    w: float = BOX_W
    h: float = BOX_H
    failing: bool = False  # it holds a failure
    entry_failing: bool = False  # the arrow into it is on the failing path

    def place(self, x: float, y: float, out: _Out) -> None:
        raise NotImplementedError


class _Out:
    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.edges: list[Edge] = []


class _Leaf(_Block):
    def __init__(self, box: Box) -> None:
        self.box = box
        self.failing = self.entry_failing = box.failing

    def place(self, x: float, y: float, out: _Out) -> None:
        b = self.box
        out.boxes.append(Box(x, y, self.w, self.h, b.kind, b.state, b.title, b.subtitle, b.op_id, b.failing, b.tooltip))


class _Seq(_Block):
    """Blocks top to bottom, centred on one axis, joined by arrows."""

    def __init__(self, items: list[_Block]) -> None:
        self.items = items
        self.w = max((i.w for i in items), default=BOX_W)
        self.h = sum(i.h for i in items) + GAP_Y * max(len(items) - 1, 0)
        self.failing = any(i.failing for i in items)
        self.entry_failing = bool(items) and items[0].entry_failing

    def place(self, x: float, y: float, out: _Out) -> None:
        cx = x + self.w / 2
        for i, item in enumerate(self.items):
            if i:
                out.edges.append(Edge(cx, y - GAP_Y, cx, y, item.entry_failing))
            item.place(cx - item.w / 2, y, out)
            y += item.h + GAP_Y


class _Columns(_Block):
    def __init__(self, cols: list[_Block]) -> None:
        self.cols = cols
        self.w = sum(c.w for c in cols) + GAP_X * max(len(cols) - 1, 0)
        self.h = max((c.h for c in cols), default=BOX_H)
        self.failing = self.entry_failing = any(c.failing for c in cols)

    def place(self, x: float, y: float, out: _Out) -> None:
        for c in self.cols:
            c.place(x, y, out)
            x += c.w + GAP_X


class _Group(_Block):
    """A box around a context's operations, with the context in its header."""

    def __init__(self, head: Box, content: _Block) -> None:
        self.head = head
        self.content = content
        self.w = max(content.w + 2 * PAD, BOX_W)
        self.h = HEAD + content.h + 2 * PAD
        self.failing = self.entry_failing = head.failing

    def place(self, x: float, y: float, out: _Out) -> None:
        h = self.head
        out.boxes.append(
            Box(x, y, self.w, self.h, "group", h.state, h.title, h.subtitle, h.op_id, h.failing, h.tooltip)
        )
        self.content.place(x + (self.w - self.content.w) / 2, y + HEAD + PAD, out)


class _Builder:
    def __init__(self, view: ExecutionView) -> None:
        self.view = view
        self.tree = OpTree.of(view)
        self.boxes = 0
        self.summed = 0

    def _box(
        self, op: OperationView, kind: str = "leaf", subtitle: str | None = None, title_op: OperationView | None = None
    ) -> Box:
        self.boxes += 1
        shown = title_op or op
        if subtitle is None:
            bits = [op.kind]
            if len(op.attempts) > 1:
                bits.append(plural(len(op.attempts), "attempt"))
            if op.closed_by:
                bits.append(op.closed_by)
            elif op.end_ms is not None:
                bits.append(format_duration(op.end_ms - op.start_ms))
            subtitle = " · ".join(bits)
        err = f"\n{op.error.short[:300]}" if op.error and state(op) == "failed" else ""
        return Box(
            0,
            0,
            BOX_W,
            BOX_H,
            kind,
            state(op),
            _cut(shown.label),
            subtitle,
            op.id,
            op.id in self.tree.failing,
            f"{op.kind} '{shown.label}': {op.closed_by or op.status.lower()}{err}",
        )

    def _summed(self, ops: list[OperationView], noun: tuple[str, str]) -> _Leaf:
        self.boxes += 1
        counts = self.tree.counts(ops)
        stands_for = len(ops) + sum(self.tree.descendants(o.id) for o in ops)
        self.summed += stands_for
        text = count_text(counts)
        return _Leaf(
            Box(
                0,
                0,
                BOX_W,
                BOX_H,
                "summed",
                "failed" if counts.get("failed") else "summed",
                f"+ {plural(len(ops), *noun)}",
                text,
                None,
                bool(counts.get("failed")),
                f"{plural(len(ops), *noun)} not drawn: {text}",
            )
        )

    def block(self, op: OperationView) -> _Block:
        kids = self.tree.kids(op.id)
        if not kids:
            return _Leaf(self._box(op))
        callback = next((k for k in kids if k.type == "CALLBACK"), None)
        if op.sub_type == "WaitForCallback" and callback is not None:
            # One box: what it waits on is the callback (its id, result and error).
            return _Leaf(
                self._box(
                    callback, subtitle=f"wait for callback · {callback.closed_by or state(callback)}", title_op=op
                )
            )
        if len(kids) == 1 and not self.tree.kids(kids[0].id):
            return _Leaf(self._box(kids[0], subtitle=f"{op.kind} {_cut(op.label, 14)} · {kids[0].kind}"))
        head = self._box(op, "group", subtitle=self.tree.group_summary(op) if op.kind in _SIDE_BY_SIDE else op.kind)
        if self.boxes > MAX_BOXES:
            return _Leaf(
                Box(
                    0,
                    0,
                    BOX_W,
                    BOX_H,
                    "summed",
                    head.state,
                    head.title,
                    self.tree.group_summary(op),
                    op.id,
                    head.failing,
                    head.tooltip,
                )
            )
        if op.kind in _SIDE_BY_SIDE:
            return _Group(
                head,
                self.columns(kids, ("branch", "branches") if op.kind == "parallel" else ("iteration", "iterations")),
            )
        return _Group(head, self.sequence(kids))

    def columns(self, kids: list[OperationView], noun: tuple[str, str]) -> _Block:
        if len(kids) <= MAX_COLUMNS:
            return _Columns([self.block(k) for k in kids])
        # Failed and unfinished first, then the first ones; the rest summed up in one box.
        notable = [k for k in kids if state(k) != "succeeded"][: MAX_COLUMNS - 1]
        keep = {k.id for k in notable} | {k.id for k in kids[: max(MAX_COLUMNS - 1 - len(notable), 0)]}
        shown = [k for k in kids if k.id in keep]
        rest = [k for k in kids if k.id not in keep]
        return _Columns([self.block(k) for k in shown] + [self._summed(rest, noun)])

    def sequence(self, ops: list[OperationView]) -> _Block:
        """A context's operations top to bottom. Runs of plain finished operations are summed
        up: first only long runs of clean ones (kept: retried ones), then any run, then, if
        the context is still too long, everything after the first notable ones."""
        for strict in (True, False):
            plan = self._plan(ops, strict)
            if len(plan) <= MAX_SEQUENCE:
                break
        else:
            keep = plan[: MAX_SEQUENCE - 2]
            tail = [o for part in plan[MAX_SEQUENCE - 2 : -1] for o in part]
            plan = [*keep, tail, plan[-1]] if tail else keep + plan[-1:]
        return _Seq(
            [
                self.block(part[0]) if len(part) == 1 else self._summed(part, ("more operation", "more operations"))
                for part in plan
            ]
        )

    def _plan(self, ops: list[OperationView], strict: bool) -> list[list[OperationView]]:
        """The boxes of a sequence: each a list of operations, one (drawn) or several (summed)."""

        def plain(op: OperationView) -> bool:
            return self.tree.plain(op) or (
                not strict and self.tree.states[op.id] == "succeeded" and op.id not in self.tree.children
            )

        plan: list[list[OperationView]] = []
        run: list[OperationView] = []
        kept = RUN_KEPT if strict else 2

        def flush() -> None:
            if len(run) > kept:
                plan.extend([[run[0]], run[1:-1], [run[-1]]])
            else:
                plan.extend([o] for o in run)
            run.clear()

        for op in ops:
            if plain(op):
                run.append(op)
                continue
            flush()
            plan.append([op])
        flush()
        return plan


def build_graph(view: ExecutionView) -> Graph:
    builder = _Builder(view)
    body = builder.sequence(builder.tree.kids(None))
    end_state = {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "failed", "STOPPED": "cancelled"}.get(
        view.status, "running"
    )
    start = _Leaf(Box(0, 0, TERMINAL_W, TERMINAL_H, "terminal", "start", "Start", "", None, False, "the input"))
    end = _Leaf(
        Box(
            0,
            0,
            TERMINAL_W,
            TERMINAL_H,
            "terminal",
            end_state,
            view.status if view.done else "…",
            "",
            None,
            end_state == "failed",
            view.status,
        )
    )
    start.w = end.w = TERMINAL_W
    start.h = end.h = TERMINAL_H
    whole = _Seq([start, *([body] if builder.tree.kids(None) else []), end])
    out = _Out()
    margin = 12
    whole.place(margin, margin, out)
    note = None
    if builder.summed:
        note = (
            f"{builder.summed:,} of {len(view.operations):,} operations are drawn as summed-up boxes "
            "(finished runs, and branches or iterations past the first few, failures first)"
        )
    return Graph(
        whole.w + 2 * margin, whole.h + 2 * margin, tuple(out.boxes), tuple(out.edges), len(view.operations), note
    )
