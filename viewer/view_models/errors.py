"""Error groups (``/errors``) and full-text search (``/search``) across executions.

The work is the database's (``recorder.error_groups``, ``recorder.search``); these models
parse the query string, shape the rows for the page (trend bars, labels) and give the JSON
twins the shape the issue fixes: ``{"groups": [{"function", "errorType", "message",
"count", "firstSeen", "lastSeen", "operations", "sampleExecutions"}]}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from recorder.api import Durascope
from recorder.error_groups import ErrorGroup, GroupFilter, error_groups
from recorder.search import SearchResults, search
from viewer.view_models.common import ViewError, parse_instant

MAX_QUERY = 200


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_group_filter(args: Any) -> GroupFilter:
    function = (args.get("function") or "").strip() or None
    if function is not None and len(function) > 64:
        raise ViewError("function is longer than 64 characters")
    since_text = (args.get("since") or "").strip()
    until_text = (args.get("until") or "").strip()
    since = parse_instant(since_text, "since") if since_text else None
    until = parse_instant(until_text, "until", end_of_day=True) if until_text else None
    if since is not None and until is not None and since > until:
        raise ViewError("since must not be after until")
    return GroupFilter(function, since, until)


@dataclass(frozen=True)
class GroupRow:
    group: ErrorGroup
    # Bar heights in percent of the group's busiest bucket (the page's small trend chart).
    bars: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        g = self.group
        return {
            "function": g.function, "errorType": g.error_type, "message": g.message, "count": g.count,
            "firstSeen": iso(g.first_seen_ms), "lastSeen": iso(g.last_seen_ms),
            "operations": [{"kind": o.kind, "name": o.name, "count": o.count} for o in g.operations],
            "sampleExecutions": [{"executionArn": s.execution_arn, "name": s.name, "status": s.status,
                                  "lastSeen": iso(s.last_seen_ms)} for s in g.samples],
            "trend": list(g.trend),
        }


@dataclass(frozen=True)
class ErrorsPage:
    function: str
    since: str
    until: str
    rows: tuple[GroupRow, ...]
    total: int
    trend_from_ms: int | None
    trend_to_ms: int | None

    @property
    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("function", self.function), ("since", self.since), ("until", self.until)) if v}

    def to_json(self) -> dict[str, Any]:
        return {"groups": [r.to_json() for r in self.rows], "failures": self.total,
                "trendFrom": iso(self.trend_from_ms), "trendTo": iso(self.trend_to_ms)}


def build_errors(ds: Durascope, args: Any) -> ErrorsPage:
    flt = parse_group_filter(args)
    with ds.db.read() as conn:
        found = error_groups(conn, flt)
    rows = []
    for g in found.groups:
        peak = max(g.trend) or 1
        rows.append(GroupRow(g, tuple(round(100 * n / peak) for n in g.trend)))
    return ErrorsPage(flt.function or "", (args.get("since") or "").strip(), (args.get("until") or "").strip(),
                      tuple(rows), found.total, found.trend_from_ms, found.trend_to_ms)


@dataclass(frozen=True)
class SearchPage:
    q: str
    results: SearchResults

    def to_json(self) -> dict[str, Any]:
        r = self.results
        return {
            "q": self.q, "terms": list(r.terms),
            "errors": [{"executionArn": h.execution_arn, "executionName": h.execution_name, "function": h.function,
                        "kind": h.kind, "operationId": h.operation_id, "operationName": h.operation_name,
                        "errorType": h.error_type, "message": h.message, "time": iso(h.ts_ms)} for h in r.errors],
            "logs": [{"executionArn": h.execution_arn, "executionName": h.execution_name, "function": h.function,
                      "lineId": h.line_id, "operationId": h.operation_id, "level": h.level, "message": h.message,
                      "time": iso(h.ts_ms)} for h in r.logs],
        }


def build_search(ds: Durascope, args: Any) -> SearchPage:
    q = (args.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise ViewError(f"q is longer than {MAX_QUERY} characters")
    with ds.db.read() as conn:
        results = search(conn, ds.db.is_sqlite, q)
    return SearchPage(q, results)
