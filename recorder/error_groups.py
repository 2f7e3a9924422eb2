"""Error groups across executions, aggregated by the database.

A group is (function, error type, masked message) over ``error_occurrences``
(``recorder.store.error_index``). One grouped query counts every group by operation and
trend bucket (its rows are few whatever the number of failures); each group's newest
executions are a short walk down the group's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

GROUP_LIMIT = 100
SAMPLES = 5
TREND_BUCKETS = 24

GroupKey = tuple[str, str, str]


@dataclass(frozen=True)
class GroupFilter:
    function: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self, alias: str = "o") -> tuple[str, dict[str, Any]]:
        clauses, params = ["1 = 1"], {}
        if self.function:
            clauses.append(f"{alias}.function_name = :function")
            params["function"] = self.function
        if self.since_ms is not None:
            clauses.append(f"{alias}.ts_ms >= :since")
            params["since"] = self.since_ms
        if self.until_ms is not None:
            clauses.append(f"{alias}.ts_ms <= :until")
            params["until"] = self.until_ms
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class OperationCount:
    kind: str
    name: str | None
    count: int


@dataclass(frozen=True)
class SampleExecution:
    execution_arn: str
    name: str
    status: str
    last_seen_ms: int


@dataclass(frozen=True)
class ErrorGroup:
    function: str
    error_type: str
    message: str
    count: int
    first_seen_ms: int
    last_seen_ms: int
    operations: tuple[OperationCount, ...]
    samples: tuple[SampleExecution, ...]
    trend: tuple[int, ...]


@dataclass(frozen=True)
class ErrorGroups:
    groups: tuple[ErrorGroup, ...]
    # The instants the trend buckets divide (the filter's, else the groups' own span).
    trend_from_ms: int | None
    trend_to_ms: int | None
    total: int


def error_groups(conn: Connection | Session, flt: GroupFilter, limit: int = GROUP_LIMIT) -> ErrorGroups:
    where, params = flt.where()
    span_row = conn.execute(text(f"SELECT COUNT(*) AS n, MIN(o.ts_ms) AS lo, MAX(o.ts_ms) AS hi "
                                 f"FROM error_occurrences o WHERE {where}"), params).one()
    if not span_row.n:
        return ErrorGroups((), flt.since_ms, flt.until_ms, 0)
    lo = flt.since_ms if flt.since_ms is not None else span_row.lo
    hi = flt.until_ms if flt.until_ms is not None else span_row.hi
    span = max(hi - lo + 1, 1)
    # One pass: counts by group, operation and trend bucket; the groups are sums of these.
    key = "o.function_name, o.error_type, o.fingerprint"
    cells = conn.execute(text(
        f"SELECT {key}, o.kind, o.op_name, (o.ts_ms - :lo) * {TREND_BUCKETS} / :span AS bucket, "
        f"COUNT(*) AS n, MIN(o.ts_ms) AS first_ms, MAX(o.ts_ms) AS last_ms FROM error_occurrences o "
        f"WHERE {where} GROUP BY {key}, o.kind, o.op_name, bucket"), {**params, "lo": lo, "span": span}).all()
    totals: dict[GroupKey, list[int]] = {}  # count, first, last
    operations: dict[GroupKey, dict[tuple[str, str | None], int]] = {}
    trends: dict[GroupKey, list[int]] = {}
    for c in cells:
        k = (c[0], c[1], c[2])
        t = totals.setdefault(k, [0, c.first_ms, c.last_ms])
        t[0] += c.n
        t[1], t[2] = min(t[1], c.first_ms), max(t[2], c.last_ms)
        ops = operations.setdefault(k, {})
        ops[(c.kind, c.op_name)] = ops.get((c.kind, c.op_name), 0) + c.n
        trends.setdefault(k, [0] * TREND_BUCKETS)[min(max(int(c.bucket), 0), TREND_BUCKETS - 1)] += c.n
    top = sorted(totals, key=lambda k: (-totals[k][0], -totals[k][2]))[:limit]
    samples = _samples(conn, top, where, params)
    groups = tuple(
        ErrorGroup(function=k[0], error_type=k[1], message=k[2], count=totals[k][0], first_seen_ms=totals[k][1],
                   last_seen_ms=totals[k][2],
                   operations=tuple(OperationCount(kind, name, n) for (kind, name), n in
                                    sorted(operations[k].items(), key=lambda item: -item[1])),
                   samples=samples.get(k, ()), trend=tuple(trends[k]))
        for k in top)
    return ErrorGroups(groups, lo, hi, span_row.n)


def _samples(conn: Connection | Session, keys: list[GroupKey], where: str,
             params: dict[str, Any]) -> dict[GroupKey, tuple[SampleExecution, ...]]:
    """The newest executions of each group: a short walk down the group's index each."""
    newest: dict[GroupKey, dict[str, int]] = {}
    for k in keys:
        rows = conn.execute(text(
            f"SELECT o.execution_id, o.ts_ms FROM error_occurrences o WHERE o.function_name = :g_function "
            f"AND o.error_type = :g_type AND o.fingerprint = :g_fingerprint AND {where} "
            f"ORDER BY o.ts_ms DESC LIMIT {SAMPLES * 8}"),
            {**params, "g_function": k[0], "g_type": k[1], "g_fingerprint": k[2]}).all()
        seen: dict[str, int] = {}
        for r in rows:
            if r.execution_id not in seen and len(seen) < SAMPLES:
                seen[r.execution_id] = r.ts_ms
        newest[k] = seen
    ids = sorted({eid for seen in newest.values() for eid in seen})
    if not ids:
        return {}
    id_params = {f"x{i}": eid for i, eid in enumerate(ids)}
    described = {r.execution_id: r for r in conn.execute(text(
        "SELECT execution_id, arn, name, status FROM executions WHERE execution_id IN "
        f"({', '.join(':' + p for p in id_params)})"), id_params)}
    return {k: tuple(SampleExecution(described[eid].arn, described[eid].name, described[eid].status, ts)
                     for eid, ts in seen.items() if eid in described) for k, seen in newest.items()}
