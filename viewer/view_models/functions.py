"""The functions index (every function's last 24 h at a glance) and one function's
statistics page: numbers from ``recorder.stats``, and the Plotly figures drawn from them
(plain dicts; the page draws them with the plotly.js this server serves)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from recorder.api import Durascope
from recorder.arns import NAME_RE
from recorder.stats import (
    DAY_MS,
    FunctionGlance,
    FunctionStats,
    Window,
    function_stats,
    functions_glance,
)
from viewer.view_models.common import ViewError, format_duration, parse_instant
from viewer.view_models.cost import CostView, build_function_cost

STATUS_COLORS = {"SUCCEEDED": "#4caf50", "FAILED": "#e53935", "TIMED_OUT": "#fb8c00", "STOPPED": "#90a4ae",
                 "RUNNING": "#29b6f6", "PAUSING": "#ab47bc", "PAUSED": "#8e24aa"}
MAX_WINDOW_MS = 400 * DAY_MS
_RELATIVE = re.compile(r"(\d+)([dhm])")
CHART_STEPS = 15  # the busiest steps drawn; the table lists up to recorder.stats.MAX_STEP_NAMES


def parse_window(args: Any, now_ms: int | None = None) -> Window:
    """``since`` and ``until``: epoch ms, a date or ISO time, or (``since`` only) ``24h``,
    ``7d``, ``30m`` back from ``until``. Default: the last 24 hours."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    until_text = (args.get("until") or "").strip()
    until = parse_instant(until_text, "until", end_of_day=True) if until_text else now
    since_text = (args.get("since") or "").strip()
    m = _RELATIVE.fullmatch(since_text)
    if not since_text:
        since = until - DAY_MS
    elif m:
        since = until - int(m[1]) * {"d": DAY_MS, "h": 3_600_000, "m": 60_000}[m[2]]
    else:
        since = parse_instant(since_text, "since")
    if since >= until:
        raise ViewError("since must be before until")
    if until - since > MAX_WINDOW_MS:
        raise ViewError("the window is at most 400 days")
    return Window(since, until)


@dataclass(frozen=True)
class FunctionRow:
    glance: FunctionGlance

    @property
    def p50(self) -> str:
        return format_duration(None if self.glance.p50_ms is None else int(self.glance.p50_ms))

    @property
    def p95(self) -> str:
        return format_duration(None if self.glance.p95_ms is None else int(self.glance.p95_ms))


@dataclass(frozen=True)
class FunctionsIndex:
    window: Window
    rows: tuple[FunctionRow, ...]
    statuses: tuple[str, ...]  # the columns: every status any row has

    def to_json(self) -> dict[str, Any]:
        return {"since": self.window.since_ms, "until": self.window.until_ms, "functions": [
            {"name": r.glance.name, "handler": r.glance.handler, "registered": r.glance.handler is not None,
             "executions": r.glance.executions, "total": r.glance.total, "failureRate": r.glance.failure_rate,
             "p50Ms": r.glance.p50_ms, "p95Ms": r.glance.p95_ms} for r in self.rows]}


def build_functions_index(ds: Durascope, args: Any) -> FunctionsIndex:
    window = parse_window(args)
    registered = {f.name: f.handler for f in ds.control.list_functions()}
    rows = tuple(FunctionRow(g) for g in functions_glance(ds.db, registered, window))
    statuses = tuple(s for s in STATUS_COLORS if any(s in r.glance.executions for r in rows))
    return FunctionsIndex(window, rows, statuses)


@dataclass(frozen=True)
class Chart:
    """One Plotly figure and the numbers printed beside it."""

    key: str
    title: str
    figure: dict[str, Any]
    numbers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FunctionPage:
    name: str
    handler: str | None
    stats: FunctionStats
    charts: tuple[Chart, ...]
    query: dict[str, str]
    cost: CostView

    def to_json(self) -> dict[str, Any]:
        return self.stats.to_json()


def known_function(ds: Durascope, name: str, args: Any) -> tuple[Window, str | None]:
    """The window asked for and the function's handler (None if only its executions are
    here); 404 for a function neither registered nor seen."""
    if not NAME_RE.match(name):
        raise ViewError(f"{name[:80]!r} is not a function name", 400)
    window = parse_window(args)
    spec = ds.control.get_function(name)
    if spec is None and not _has_executions(ds, name):
        raise ViewError(f"Function not found: {name}", 404)
    return window, spec.handler if spec else None


def build_function_page(ds: Durascope, name: str, args: Any) -> FunctionPage:
    window, handler = known_function(ds, name, args)
    stats = function_stats(ds.db, name, window)
    query = {k: args[k] for k in ("since", "until") if args.get(k)}
    return FunctionPage(name, handler, stats, _charts(stats), query,
                        build_function_cost(ds, name, window))


def _has_executions(ds: Durascope, name: str) -> bool:
    from sqlalchemy import select

    from recorder.store.models import Execution

    with ds.db.read() as s:
        return s.scalar(select(Execution.execution_id).where(Execution.function_name == name).limit(1)) is not None


def _layout(**extra: Any) -> dict[str, Any]:
    if "yaxis" in extra:
        extra["yaxis"] = {"rangemode": "tozero", **extra["yaxis"]}
    return {"margin": {"l": 48, "r": 12, "t": 8, "b": 40}, "height": 260, "font": {"size": 11},
            "legend": {"orientation": "h", "y": -0.2}, "paper_bgcolor": "#fff", "plot_bgcolor": "#fff", **extra}


def _ms(value: float | None) -> str:
    return format_duration(None if value is None else round(value))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _charts(st: FunctionStats) -> tuple[Chart, ...]:
    x = [b.start_ms for b in st.over_time]
    statuses = [s for s in STATUS_COLORS if s in st.executions] + sorted(set(st.executions) - set(STATUS_COLORS))
    over_time = Chart("executions", "Executions per status over time", {
        "data": [{"type": "bar", "name": s, "x": x, "y": [b.counts.get(s, 0) for b in st.over_time],
                  "marker": {"color": STATUS_COLORS.get(s, "#607d8b")}} for s in statuses],
        "layout": _layout(barmode="stack", xaxis={"type": "date"}, yaxis={"title": {"text": "executions"}})},
        (("total", f"{st.total:,}"), *((s, f"{st.executions[s]:,}") for s in statuses),
         ("bucket", format_duration(st.bucket_ms))))

    drawn = st.steps[:CHART_STEPS]
    names = [s.name for s in drawn]
    steps = Chart("steps", "Step durations (p50, p95, p99)", {
        "data": [{"type": "bar", "name": label, "x": names, "y": [getattr(s, attr) for s in drawn]}
                 for label, attr in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))],
        "layout": _layout(barmode="group", yaxis={"title": {"text": "ms"}})},
        (("step names", f"{len(st.steps):,}"), ("step runs", f"{sum(s.count for s in st.steps):,}"),
         ("retried runs' extra attempts", f"{sum(round(s.retry_rate * s.count) for s in st.steps):,}")))

    wall = st.active_ms + st.suspended_ms
    time_split = Chart("time", "Active (invoked) against suspended time", {
        "data": [{"type": "bar", "orientation": "h", "name": label, "y": ["time"], "x": [value / 1000],
                  "marker": {"color": color}}
                 for label, value, color in (("active", st.active_ms, "#3f6ea8"),
                                             ("suspended", st.suspended_ms, "#cfd8dc"))],
        "layout": _layout(barmode="stack", height=140, xaxis={"title": {"text": "seconds, all executions"}})},
        (("active", format_duration(st.active_ms)), ("suspended", format_duration(st.suspended_ms)),
         ("active share", _pct(st.active_ms / wall if wall else None)),
         ("invocations", f"{st.invocations:,}"),
         ("per execution", f"{st.invocations / st.total:.2f}" if st.total else "—")))

    invocations = Chart("invocations", "Invocations per execution", {
        "data": [{"type": "bar", "name": "executions", "x": [k for k, _ in st.invocations_per_execution],
                  "y": [n for _, n in st.invocations_per_execution], "marker": {"color": "#3f6ea8"}}],
        "layout": _layout(xaxis={"title": {"text": "invocations"}, "dtick": 1},
                          yaxis={"title": {"text": "executions"}})},
        tuple((f"{k} invocation{'s' if k != 1 else ''}", f"{n:,}") for k, n in st.invocations_per_execution[:8]))

    cb = st.callback_waits
    callbacks = Chart("callbacks", "Callback wait time", {
        "data": [{"type": "bar", "name": "callbacks", "x": [b for b, _ in cb.histogram],
                  "y": [n for _, n in cb.histogram], "marker": {"color": "#ab47bc"}}],
        "layout": _layout(yaxis={"title": {"text": "callbacks"}})},
        (("answered callbacks", f"{cb.count:,}"), ("p50", _ms(cb.p50_ms)), ("p95", _ms(cb.p95_ms)),
         ("p99", _ms(cb.p99_ms))))
    return over_time, steps, time_split, invocations, callbacks
