"""The execution timeline: invocations against suspended time, then every operation nested
under its parent.

Top lanes: the invocations (one lane, they never overlap) and the suspended gaps between
them, labelled with what the execution waited for, shaded down through the operations.
Below: one row per operation in tree order. Contexts, parallel branches and map
iterations are groups that open and close (``<details>``), their row showing the counts per
state of their children; a step's row shows each attempt as its own segment, the retry
delay between attempts pale. The failing path (failed operations and their parents) is
marked and starts open.

Readable at scale: at most ``MAX_SIBLINGS`` children of one parent (``MAX_TOP`` at the
top) and ``MAX_ROWS`` rows in all are drawn; the rest of a parent's children become one
summed-up row with counts per state, failed children always drawn first. Everything is
plain HTML from the server (``templates/_timeline.html``): no chart library, and user text
is escaped by the template like everywhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from viewer.op_tree import OpTree, count_text, state
from viewer.view_models.common import format_duration, plural
from viewer.view_models.execution import ExecutionView, OperationView

MAX_ROWS = 250
MAX_TOP = 60
MAX_SIBLINGS = 30
MAX_FAILED_SHOWN = 10
MAX_GAP_BARS = 500
OPEN_GROUP_CHILDREN = 12  # a group with more children starts closed (unless it holds a failure)
# Tick steps (ms): the first that gives at most MAX_TICKS ticks.
_STEPS = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
)
MAX_TICKS = 8
_ATTEMPT_STATE = {
    "succeeded": "succeeded",
    "failed": "failed",
    "retrying": "retrying",
    "running": "running",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Bar:
    left: float  # percent of the timeline's span
    width: float
    state: str  # drawn as .st-<state>
    title: str  # the hover text
    target: str = ""  # what a click opens: op:<id>, invocation:<n> or waiting
    text: str = ""  # drawn inside the bar


@dataclass(frozen=True)
class Row:
    op_id: str | None
    label: str
    kind: str
    state: str
    depth: int
    bars: tuple[Bar, ...]
    children: tuple[Row, ...] = ()
    open: bool = True
    failing: bool = False
    summary: str = ""  # a group's counts per state
    stands_for: int = 0  # a summed-up row: how many operations it stands for

    @property
    def group(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class Tick:
    left: float
    iso: str
    text: str


@dataclass(frozen=True)
class Timeline:
    start_ms: int
    end_ms: int
    precision: str  # tick labels to the "s" or the "ms"
    ticks: tuple[Tick, ...]
    invocations: tuple[Bar, ...]
    gaps: tuple[Bar, ...]
    rows: tuple[Row, ...]
    rows_drawn: int
    operations: int
    note: str | None

    @property
    def states(self) -> tuple[str, ...]:
        from viewer.op_tree import STATES

        return STATES


class _Scale:
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.span = max(end - start, 1)

    def bar(self, start: int, end: int, st: str, title: str, target: str = "", text: str = "") -> Bar:
        left = min(max((start - self.start) / self.span * 100, 0.0), 100.0)
        width = min(max((end - start) / self.span * 100, 0.0), 100.0 - left)
        # Text goes inside a bar only where it can be read (about 7 px a character at 1366 px).
        if width < min(len(text), 12) * 0.7:
            text = ""
        return Bar(round(left, 3), round(width, 3), st, title, target, text)


def _ticks(start: int, end: int) -> tuple[str, tuple[Tick, ...]]:
    span = max(end - start, 1)
    step = next((s for s in _STEPS if span / s <= MAX_TICKS), _STEPS[-1])
    precision = "ms" if step < 1000 else "s"
    first = -(-start // step) * step
    out = []
    for t in range(first, end + 1, step):
        d = dt.datetime.fromtimestamp(t / 1000, dt.UTC)
        text = d.strftime("%H:%M:%S") + (f".{t % 1000:03d}" if precision == "ms" else "")
        out.append(
            Tick(round((t - start) / span * 100, 3), d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t % 1000:03d}Z", text)
        )
    return precision, tuple(out)


class _Builder:
    def __init__(self, view: ExecutionView, scale: _Scale) -> None:
        self.view = view
        self.tree = OpTree.of(view)
        self.scale = scale
        self.drawn = 0
        self.summed = 0

    def op_bars(self, op: OperationView) -> tuple[Bar, ...]:
        title = f"{op.kind} '{op.label}'"
        end_default = op.end_ms if op.end_ms is not None else (self.view.end_ms or self.view.now_ms)
        target = f"op:{op.id}"
        if not op.attempts:
            what = op.closed_by or op.status.lower()
            err = f" · {op.error.short[:200]}" if op.error else ""
            return (
                self.scale.bar(
                    op.start_ms,
                    end_default,
                    state(op),
                    f"{title}: {what}, {format_duration(end_default - op.start_ms)}{err}",
                    target,
                ),
            )
        bars: list[Bar] = []
        previous_end = None
        for a in op.attempts:
            if previous_end is not None and a.start_ms > previous_end:
                bars.append(
                    self.scale.bar(
                        previous_end,
                        a.start_ms,
                        "delay",
                        f"{title}: retry delay before attempt {a.number}, {format_duration(a.start_ms - previous_end)}",
                        target,
                    )
                )
            end = a.end_ms if a.end_ms is not None else end_default
            err = f" · {a.error.short[:200]}" if a.error else ""
            bars.append(
                self.scale.bar(
                    a.start_ms,
                    end,
                    _ATTEMPT_STATE.get(a.outcome, "running"),
                    f"{title}: attempt {a.number} {a.outcome}, {format_duration(end - a.start_ms)}{err}",
                    target,
                )
            )
            previous_end = end
        last = op.attempts[-1]
        if last.outcome == "retrying" and op.status in ("PENDING", "READY") and last.end_ms is not None:
            until = self.view.now_ms if not self.view.done else end_default
            bars.append(self.scale.bar(last.end_ms, until, "delay", f"{title}: waiting to retry", target))
        return tuple(bars)

    def rows(self, parent: str | None, depth: int) -> tuple[Row, ...]:
        kids = self.tree.kids(parent)
        limit = min(MAX_TOP if parent is None else MAX_SIBLINGS, max(MAX_ROWS - self.drawn, 0))
        shown, rest = self._select(kids, limit)
        out: list[Row] = []
        for op in shown:
            self.drawn += 1
            children = self.rows(op.id, depth + 1) if self.tree.kids(op.id) else ()
            failing = op.id in self.tree.failing
            n_kids = len(self.tree.kids(op.id))
            # A group of one (an iteration around its step) draws the same bar twice: closed.
            open_ = failing or (1 < n_kids <= OPEN_GROUP_CHILDREN and depth < 3)
            out.append(
                Row(
                    op.id,
                    op.label,
                    op.kind,
                    state(op),
                    depth,
                    self.op_bars(op),
                    children,
                    open_,
                    failing,
                    self.tree.group_summary(op) if n_kids > 1 else "",
                )
            )
        if rest:
            out.append(self._summed(rest, depth))
        return tuple(out)

    def _select(self, kids: list[OperationView], limit: int) -> tuple[list[OperationView], list[OperationView]]:
        if len(kids) <= limit:
            return kids, []
        # Failures first (failed, or failed and retried), then the first children in start order.
        failed = [k.id for k in kids if k.id in self.tree.failing or k.failed][:MAX_FAILED_SHOWN]
        keep = set(failed) | {k.id for k in kids[: max(limit - len(failed), 0)]}
        return [k for k in kids if k.id in keep], [k for k in kids if k.id not in keep]

    def _summed(self, rest: list[OperationView], depth: int) -> Row:
        stands_for = len(rest) + sum(self.tree.descendants(o.id) for o in rest)
        self.summed += stands_for
        counts = self.tree.counts(rest)
        start = min(o.start_ms for o in rest)
        end = max((o.end_ms if o.end_ms is not None else (self.view.end_ms or self.view.now_ms)) for o in rest)
        summary = count_text(counts)
        label = f"+ {plural(len(rest), 'more operation')}"
        return Row(
            None,
            label,
            "",
            "failed" if counts.get("failed") else "summed",
            depth,
            (self.scale.bar(start, end, "summed", f"{len(rest):,} operations not drawn: {summary}", "operations"),),
            summary=summary,
            stands_for=stands_for,
            failing=bool(counts.get("failed")),
        )


def build_timeline(view: ExecutionView) -> Timeline:
    start = view.start_ms
    end = max(view.end_ms or view.now_ms, start + 1)
    scale = _Scale(start, end)
    precision, ticks = _ticks(start, end)
    invocations = tuple(
        scale.bar(
            i.start_ms,
            i.end_ms,
            "invocation",
            f"invocation {i.index}: {format_duration(i.duration_ms)}, request {i.request_id}",
            f"invocation:{i.index}",
            str(i.index),
        )
        for i in view.invocations
    )
    gaps = tuple(
        scale.bar(
            g.start_ms,
            g.end_ms,
            "suspended",
            f"suspended {format_duration(g.end_ms - g.start_ms)}, waiting for: {g.label[:400]}",
            "waiting" if g.open else "",
            g.label[:120],
        )
        for g in view.gaps[:MAX_GAP_BARS]
    )
    builder = _Builder(view, scale)
    rows = builder.rows(None, 0)
    notes = []
    if builder.summed:
        notes.append(
            f"{builder.drawn:,} of {len(view.operations):,} operations are drawn; the rest are summed up "
            "per parent, failures first"
        )
    if len(view.gaps) > MAX_GAP_BARS:
        notes.append(f"the first {MAX_GAP_BARS} of {len(view.gaps):,} suspended gaps are drawn")
    return Timeline(
        start,
        end,
        precision,
        ticks,
        invocations,
        gaps,
        rows,
        builder.drawn,
        len(view.operations),
        "; ".join(notes) or None,
    )
