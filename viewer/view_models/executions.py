"""The executions list: filters in the URL, keyset pages, counts per status."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recorder.api import Durascope
from recorder.queries import (
    LIST_STATUSES,
    VIEW_SORTS,
    ExecutionQuery,
    browse_executions,
    execution_facets,
    execution_sort_value,
    execution_status_counts,
)
from viewer.view_models.common import ErrorInfo, ViewError, now_ms, parse_instant, split_values

STATUS_ORDER = ("RUNNING", "PAUSING", "PAUSED", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "DELETING")
PAGE_SIZES = (20, 50, 100, 200)
# What a closed execution without an error record says about how it ended.
ENDED_WITHOUT_ERROR = {"TIMED_OUT": "the execution timeout passed", "STOPPED": "stopped (no reason given)"}


@dataclass(frozen=True)
class ListFilters:
    """The list's state, all of it in the URL query string."""

    functions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    q: str = ""
    started_from: str = ""
    started_to: str = ""
    error_type: str = ""
    sort: str = "start"
    order: str = "desc"
    limit: int = 50
    cursor: str = ""

    @classmethod
    def from_args(cls, args: Any) -> ListFilters:
        statuses = split_values(args, "status", lambda s: s.strip().upper())
        bad = [s for s in statuses if s not in LIST_STATUSES]
        if bad:
            raise ViewError(f"Unknown status {', '.join(bad)[:100]}; use one of {', '.join(STATUS_ORDER)}")
        functions = split_values(args, "function")
        sort = args.get("sort", "start") or "start"
        if sort not in VIEW_SORTS:
            raise ViewError(f"sort must be one of {', '.join(VIEW_SORTS)}")
        order = args.get("order", "desc") or "desc"
        if order not in ("asc", "desc"):
            raise ViewError("order must be asc or desc")
        try:
            limit = int(args.get("limit", 50) or 50)
        except ValueError:
            raise ViewError("limit must be a number") from None
        if not 1 <= limit <= 500:
            raise ViewError("limit must be from 1 to 500")
        f = cls(
            functions,
            statuses,
            (args.get("q") or "").strip()[:200],
            (args.get("from") or "").strip(),
            (args.get("to") or "").strip(),
            (args.get("error") or "").strip()[:200],
            sort,
            order,
            limit,
            (args.get("cursor") or "").strip(),
        )
        f.query()  # validates the dates now, so a bad one is a 400 before any work
        if f.cursor:
            f.after()
        return f

    def query(self) -> ExecutionQuery:
        start = parse_instant(self.started_from, "from") if self.started_from else None
        end = parse_instant(self.started_to, "to", end_of_day=True) if self.started_to else None
        if start is not None and end is not None and start > end:
            raise ViewError("from is after to")
        return ExecutionQuery(self.functions, self.statuses, self.q or None, start, end, self.error_type or None)

    def _fingerprint(self) -> str:
        # A cursor only makes sense for the filters and order it was issued for.
        parts = [
            self.functions,
            self.statuses,
            self.q,
            self.started_from,
            self.started_to,
            self.error_type,
            self.sort,
            self.order,
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]

    def make_cursor(self, key: int, execution_id: str) -> str:
        raw = json.dumps({"k": key, "i": execution_id, "f": self._fingerprint()}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def after(self) -> tuple[int, str] | None:
        if not self.cursor:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(self.cursor + "=" * (-len(self.cursor) % 4)))
            key, ident = int(data["k"]), data["i"]
            if not isinstance(ident, str) or len(ident) > 64 or data["f"] != self._fingerprint():
                raise ValueError
            if not -(2**63) <= key < 2**63:
                raise ValueError
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ViewError(
                "Invalid cursor: it is damaged or belongs to other filters; start from the first page"
            ) from None
        return key, ident

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string parameters for a link to this list with ``changes`` applied
        (changing a filter drops the cursor: pages of another query do not exist)."""
        base: dict[str, Any] = {
            "function": list(self.functions),
            "status": list(self.statuses),
            "q": self.q,
            "from": self.started_from,
            "to": self.started_to,
            "error": self.error_type,
            "sort": self.sort,
            "order": self.order,
            "limit": self.limit,
        }
        if "cursor" not in changes:
            changes["cursor"] = ""
        base.update(changes)
        return {
            k: v
            for k, v in base.items()
            if v not in ("", None, [], ())
            and not (k == "sort" and v == "start")
            and not (k == "order" and v == "desc")
            and not (k == "limit" and v == 50)
        }

    @property
    def active(self) -> bool:
        return bool(
            self.functions or self.statuses or self.q or self.started_from or self.started_to or self.error_type
        )

    @property
    def newest_first_page(self) -> bool:
        """Whether a newly started execution belongs at the top of this page."""
        return not self.cursor and self.sort == "start" and self.order == "desc"


@dataclass(frozen=True)
class ExecutionRow:
    arn: str
    name: str
    function: str
    version: str
    status: str
    start_ms: int
    end_ms: int | None
    duration_ms: int
    error_type: str | None
    error: str | None  # the error's short type and message, or why a TIMED_OUT/STOPPED one ended
    invocations: int
    imported: bool


@dataclass(frozen=True)
class ExecutionList:
    filters: ListFilters
    rows: tuple[ExecutionRow, ...]
    next_cursor: str | None
    status_counts: tuple[tuple[str, int], ...]
    total: int
    functions: tuple[str, ...]
    error_types: tuple[str, ...]

    @property
    def follows_changes(self) -> bool:
        """Whether anything on this page can still change: a new execution can appear on
        the newest-first first page; otherwise only running rows change."""
        return self.filters.newest_first_page or any(r.end_ms is None for r in self.rows)


def _row_error(status: str, error_json: str | None) -> str | None:
    err = ErrorInfo.of(error_json)
    if err is not None:
        return err.short[:300]
    return ENDED_WITHOUT_ERROR.get(status)


def build_execution_list(ds: Durascope, f: ListFilters) -> ExecutionList:
    query = f.query()
    rows, more = browse_executions(ds.db, query, f.sort, f.order == "desc", f.after(), f.limit)
    counts = execution_status_counts(ds.db, query)
    functions, errors = execution_facets(ds.db)
    now = now_ms()
    items = tuple(
        ExecutionRow(
            r.arn,
            r.name,
            r.function_name,
            r.function_version,
            r.status,
            r.start_ms,
            r.end_ms,
            (r.end_ms or now) - r.start_ms,
            r.error_type,
            _row_error(r.status, r.error_json),
            r.invocation_count,
            bool(r.imported),
        )
        for r in rows
    )
    cursor = f.make_cursor(execution_sort_value(rows[-1], f.sort), rows[-1].execution_id) if more and rows else None
    ordered = tuple((s, counts.get(s, 0)) for s in STATUS_ORDER if counts.get(s) or s in f.statuses)
    total = sum(n for s, n in counts.items() if not f.statuses or s in f.statuses)
    return ExecutionList(f, items, cursor, ordered, total, tuple(functions), tuple(errors))


def filtered_arns(ds: Durascope, f: ListFilters, page: int = 500) -> Iterator[str]:
    """Every ARN the list's filters match, in the list's order, read page by page (keyset),
    for bulk export: memory holds one page of ARNs, never the histories."""
    query = f.query()
    after = None
    while True:
        rows, more = browse_executions(ds.db, query, f.sort, f.order == "desc", after, page)
        for r in rows:
            yield r.arn
        if not more or not rows:
            return
        after = (execution_sort_value(rows[-1], f.sort), rows[-1].execution_id)
