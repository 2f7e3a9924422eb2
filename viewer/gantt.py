"""The execution Gantt chart: invocations against suspended time, then every operation.

Top lanes: one per invocation (InvocationCompleted start→end). Suspended gaps are shaded
across the whole chart and drawn as bars on a "suspended" lane, labelled with what the
execution waited for. Below: one lane per operation in tree order (children indented
under their parent), each step attempt its own segment coloured by outcome, with the
retry delay between attempts drawn pale.

Readability at scale: at most ``MAX_OP_LANES`` operation lanes and ``MAX_INVOCATION_LANES``
invocation lanes; the rest are grouped (per parent for operations) into one lane each, and
``GanttChart.note`` says so. The figure uses a handful of traces (one per outcome), not one
per bar, so 10,000 events stay quick to build and to draw.

All text that comes from users (names, errors) is HTML-escaped: plotly renders a subset
of HTML in hover labels and tick labels.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Any

import plotly.io as pio

from viewer.view_models.common import format_duration
from viewer.view_models.execution import ExecutionView, OperationView

MAX_OP_LANES = 60
MAX_INVOCATION_LANES = 12
LANE_PX = 24

# Drawing order is this order: pale backgrounds (suspended, retry delay) first, so the
# short attempt bars on top of them stay visible.
COLORS = {
    "invocation": "#4c78a8",
    "suspended": "#d9d9d9",
    "retry-delay": "#fbd5b0",
    "grouped": "#bab0ac",
    "succeeded": "#54a24b",
    "retrying": "#f58518",
    "failed": "#e45756",
    "running": "#72b7b2",
    "waiting": "#b279a2",
    "other": "#9d9d9d",
}
LEGEND = {
    "invocation": "invocation", "suspended": "suspended", "succeeded": "succeeded", "failed": "failed",
    "retrying": "failed, retried", "retry-delay": "retry delay", "running": "running", "waiting": "waiting",
    "other": "cancelled/stopped", "grouped": "grouped operations",
}


@dataclass(frozen=True)
class GanttChart:
    figure: dict[str, Any]  # plotly JSON (data + layout), embedded with |tojson
    note: str | None
    height: int


def _esc(text: Any) -> str:
    return html.escape(str(text if text is not None else ""), quote=True)


def _dur(ms: int | None) -> str:
    return format_duration(ms)


class _Bars:
    """Bars collected per colour key: one plotly trace per key keeps the figure small."""

    def __init__(self, min_width: float) -> None:
        self.min_width = min_width
        self.by_key: dict[str, dict[str, list[Any]]] = {}

    def add(self, key: str, lane: int, start: int, end: int, hover: str, target: str, text: str = "") -> None:
        b = self.by_key.setdefault(key, {"y": [], "base": [], "x": [], "hover": [], "target": [], "text": []})
        b["y"].append(lane)
        b["base"].append(start)
        # Steps often take 0 ms; give every bar a visible width (hover shows the real one).
        b["x"].append(max(end - start, self.min_width))
        b["hover"].append(hover)
        b["target"].append(target)
        b["text"].append(text)

    def traces(self) -> list[dict[str, Any]]:
        out = []
        for key in COLORS:
            b = self.by_key.get(key)
            if not b:
                continue
            out.append({
                "type": "bar", "orientation": "h", "y": b["y"], "base": b["base"], "x": b["x"], "name": LEGEND[key],
                "marker": {"color": COLORS[key], "line": {"width": 0.5, "color": "#ffffff"}},
                "customdata": [list(pair) for pair in zip(b["target"], b["hover"])],
                "hovertemplate": "%{customdata[1]}<extra></extra>",
                "text": b["text"], "textposition": "inside", "insidetextanchor": "start",
                "textfont": {"size": 11, "color": "#333333"}, "cliponaxis": True, "width": 0.7})
        return out


def _op_segments(bars: _Bars, op: OperationView, lane: int, view: ExecutionView) -> None:
    title = f"<b>{_esc(op.label)}</b><br>{_esc(op.sub_type or op.type)}"
    end_default = op.end_ms if op.end_ms is not None else (view.end_ms or view.now_ms)
    if op.attempts:
        previous_end = None
        for a in op.attempts:
            if previous_end is not None and a.start_ms > previous_end:
                bars.add("retry-delay", lane, previous_end, a.start_ms,
                         f"{title}<br>retry delay before attempt {a.number}: {_dur(a.start_ms - previous_end)}",
                         op.id)
            end = a.end_ms if a.end_ms is not None else end_default
            err = f"<br>{_esc(a.error.summary)[:300]}" if a.error else ""
            bars.add("other" if a.outcome == "cancelled" else a.outcome, lane, a.start_ms, end,
                     f"{title}<br>attempt {a.number}: {a.outcome}, {_dur(end - a.start_ms)}{err}", op.id)
            previous_end = end
        last = op.attempts[-1]
        if last.outcome == "retrying" and op.status in ("PENDING", "READY") and last.end_ms is not None:
            bars.add("retry-delay", lane, last.end_ms, view.now_ms if not view.done else end_default,
                     f"{title}<br>waiting to retry", op.id)
        return
    key = {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "failed", "STARTED": "running",
           "PENDING": "waiting", "READY": "running"}.get(op.status, "other")
    if op.type in ("WAIT", "CALLBACK", "CHAINED_INVOKE") and op.status in ("STARTED", "PENDING"):
        key = "waiting"
    if op.closed_by:
        key = "other"
    err = f"<br>{_esc(op.error.summary)[:300]}" if op.error else ""
    bars.add(key, lane, op.start_ms, end_default,
             f"{title}<br>{(op.closed_by or op.status.lower())}, {_dur(end_default - op.start_ms)}{err}", op.id)


def _lanes(ops: tuple[OperationView, ...], limit: int) -> tuple[list[OperationView | list[OperationView]], int]:
    """Operation lanes in tree order; once ``limit`` lanes are used, each parent's
    remaining children (with their descendants) collapse into one grouped lane."""
    if len(ops) <= limit:
        return list(ops), 0
    lanes: list[OperationView | list[OperationView]] = []
    grouped = 0
    i = 0
    while i < len(ops):
        op = ops[i]
        if len(lanes) < limit:
            lanes.append(op)
            i += 1
            continue
        # Group this op and its following siblings (same parent) with all their descendants.
        group = [op]
        j = i + 1
        while j < len(ops) and (ops[j].depth > op.depth or (ops[j].depth == op.depth
                                                            and ops[j].parent_id == op.parent_id)):
            group.append(ops[j])
            j += 1
        lanes.append(group)
        grouped += len(group)
        i = j
    return lanes, grouped


def build_gantt(view: ExecutionView) -> GanttChart:
    start = view.start_ms
    end = view.end_ms or view.now_ms
    span = max(end - start, 1)
    bars = _Bars(min_width=span * 0.006)
    labels: list[str] = []
    notes: list[str] = []
    shapes: list[dict[str, Any]] = []

    # Invocation lanes.
    invs = list(view.invocations)
    shown = invs if len(invs) <= MAX_INVOCATION_LANES else invs[:MAX_INVOCATION_LANES - 1]
    for inv in shown:
        lane = len(labels)
        labels.append(f"invocation {inv.index}")
        bars.add("invocation", lane, inv.start_ms, inv.end_ms,
                 f"<b>invocation {inv.index}</b><br>{_dur(inv.duration_ms)}<br>request {_esc(inv.request_id)}",
                 f"inv-{inv.index}")
    if len(shown) < len(invs):
        lane = len(labels)
        rest = invs[len(shown):]
        labels.append(f"invocations {rest[0].index}–{rest[-1].index}")
        for inv in rest:
            bars.add("invocation", lane, inv.start_ms, inv.end_ms,
                     f"<b>invocation {inv.index}</b><br>{_dur(inv.duration_ms)}", f"inv-{inv.index}")
        notes.append(f"invocations {rest[0].index}–{rest[-1].index} share one lane")

    # Suspended lane and shading.
    if view.gaps:
        lane = len(labels)
        labels.append("suspended")
        for g in view.gaps:
            bars.add("suspended", lane, g.start_ms, g.end_ms,
                     f"<b>suspended</b> {_dur(g.end_ms - g.start_ms)}<br>waiting for: {_esc(g.label)[:400]}",
                     "waiting" if g.open else "", _esc(g.label)[:80])
        for g in view.gaps[:300]:  # shading is decoration: bounded so huge histories stay fast
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": g.start_ms, "x1": g.end_ms,
                           "y0": 0, "y1": 1, "fillcolor": "#eeeeee", "opacity": 0.5, "line": {"width": 0},
                           "layer": "below"})

    # Operation lanes.
    op_lanes, grouped = _lanes(view.operations, MAX_OP_LANES)
    for item in op_lanes:
        lane = len(labels)
        if isinstance(item, list):
            first = item[0]
            parent = next((o.label for o in view.operations if o.id == first.parent_id), None)
            failed = sum(1 for o in item if o.failed)
            labels.append(_esc(f"{'  ' * first.depth}+{len(item)} more" + (f" in {parent}" if parent else "")))
            g_start = min(o.start_ms for o in item)
            g_end = max((o.end_ms or end) for o in item)
            bars.add("grouped", lane, g_start, g_end,
                     f"<b>{len(item)} operations grouped</b>" + (f" under {_esc(parent)}" if parent else "")
                     + f"<br>{failed} with failures<br>see the operations list below", first.id)
            continue
        labels.append(_esc(("\u2003" * item.depth) + item.label[:60]))
        _op_segments(bars, item, lane, view)
    if grouped:
        notes.append(f"{grouped} of {len(view.operations)} operations are grouped per parent "
                     f"(the chart shows {MAX_OP_LANES} operation lanes at most)")

    height = max(160, LANE_PX * len(labels) + 110)
    layout = {
        "barmode": "overlay",
        "height": height,
        "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
        # plotly.js draws epoch-ms dates in the browser's time zone; the page names it.
        "xaxis": {"type": "date", "title": {"text": "local time", "font": {"size": 11}},
                  "range": [start - span * 0.01, end + span * 0.01], "gridcolor": "#eeeeee"},
        "yaxis": {"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels,
                  "autorange": "reversed", "automargin": True, "tickfont": {"size": 11}},
        # Above the lanes: below them it collided with the axis title, and on a tall chart it
        # was a scroll away from the bars it explains.
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1, "yanchor": "bottom", "font": {"size": 11}},
        "hoverlabel": {"align": "left"},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "bargap": 0.3,
    }
    # Plain plotly JSON: building graph objects only validated what this module writes, and
    # took a tenth of the 10,000-event page. The default template keeps plotly's look.
    if shapes:
        layout["shapes"] = shapes
    layout["template"] = _template()
    return GanttChart({"data": bars.traces(), "layout": layout}, "; ".join(notes) or None, height)


@functools.cache
def _template() -> dict[str, Any]:
    # The installed plotly's default template: package data, the same for the whole process.
    return pio.templates[pio.templates.default].to_plotly_json()
