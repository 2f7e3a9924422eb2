"""Error groups across executions, aggregated by the database.

A group is (function, error type, masked message) over ``error_occurrences``
(``recorder.store.error_index``). Four grouped queries answer a page whatever the number
of failures: the groups, the steps they occur in, their trend, their newest executions.
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
    params = {**params, "limit": limit}
    top = (f"SELECT o.function_name, o.error_type, o.fingerprint, COUNT(*) AS n, MIN(o.ts_ms) AS first_ms, "
           f"MAX(o.ts_ms) AS last_ms FROM error_occurrences o WHERE {where} "
           f"GROUP BY o.function_name, o.error_type, o.fingerprint ORDER BY n DESC, last_ms DESC LIMIT :limit")
    rows = conn.execute(text(top), params).all()
    total = conn.execute(text(f"SELECT COUNT(*) FROM error_occurrences o WHERE {where}"),
                         {k: v for k, v in params.items() if k != "limit"}).scalar_one()
    if not rows:
        return ErrorGroups((), flt.since_ms, flt.until_ms, total)
    join = (f"FROM error_occurrences o JOIN ({top}) t ON t.function_name = o.function_name "
            f"AND t.error_type = o.error_type AND t.fingerprint = o.fingerprint WHERE {where}")
    key = "o.function_name, o.error_type, o.fingerprint"

    operations: dict[GroupKey, list[OperationCount]] = {}
    for r in conn.execute(text(f"SELECT {key}, o.kind, o.op_name, COUNT(*) AS n {join} "
                               f"GROUP BY {key}, o.kind, o.op_name ORDER BY n DESC"), params):
        operations.setdefault((r[0], r[1], r[2]), []).append(OperationCount(r.kind, r.op_name, r.n))

    lo = flt.since_ms if flt.since_ms is not None else min(r.first_ms for r in rows)
    hi = flt.until_ms if flt.until_ms is not None else max(r.last_ms for r in rows)
    span = max(hi - lo + 1, 1)
    trends: dict[GroupKey, list[int]] = {}
    for r in conn.execute(text(f"SELECT {key}, (o.ts_ms - :lo) * {TREND_BUCKETS} / :span AS bucket, COUNT(*) AS n "
                               f"{join} GROUP BY {key}, bucket"), {**params, "lo": lo, "span": span}):
        bucket = min(max(int(r.bucket), 0), TREND_BUCKETS - 1)
        trends.setdefault((r[0], r[1], r[2]), [0] * TREND_BUCKETS)[bucket] += r.n

    samples: dict[GroupKey, list[SampleExecution]] = {}
    sample_sql = (
        f"WITH per_execution AS (SELECT {key}, o.execution_id, MAX(o.ts_ms) AS last_ms {join} "
        f"GROUP BY {key}, o.execution_id), "
        "ranked AS (SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.function_name, p.error_type, p.fingerprint "
        "ORDER BY p.last_ms DESC, p.execution_id) AS rn FROM per_execution p) "
        "SELECT r.function_name, r.error_type, r.fingerprint, r.last_ms, x.arn, x.name, x.status "
        f"FROM ranked r JOIN executions x ON x.execution_id = r.execution_id WHERE r.rn <= {SAMPLES} "
        "ORDER BY r.last_ms DESC")
    for r in conn.execute(text(sample_sql), params):
        samples.setdefault((r[0], r[1], r[2]), []).append(SampleExecution(r.arn, r.name, r.status, r.last_ms))

    groups = tuple(
        ErrorGroup(function=r[0], error_type=r[1], message=r[2], count=r.n, first_seen_ms=r.first_ms,
                   last_seen_ms=r.last_ms, operations=tuple(operations.get((r[0], r[1], r[2]), ())),
                   samples=tuple(samples.get((r[0], r[1], r[2]), ())),
                   trend=tuple(trends.get((r[0], r[1], r[2]), [0] * TREND_BUCKETS)))
        for r in rows)
    return ErrorGroups(groups, lo, hi, total)
