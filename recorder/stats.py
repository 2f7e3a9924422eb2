"""Per-function statistics over a time window, computed by the database.

Everything here is an SQL aggregate over the projections (``executions``, whose
``active_ms`` sums the invocations' durations; ``step_runs``, the narrow copy of the STEP
operations; ``callbacks``): no Python loop over events or rows, and no event JSON read.
Percentiles are ``percentile_cont`` on PostgreSQL and the same interpolation written with
window functions on SQLite (a running total over each group's distinct values, the two
neighbouring ranks of ``p * (n - 1)``), so both databases give the same numbers.

The window selects executions by their start time: ``since <= start_ms < until``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from recorder.store.db import Database
from recorder.store.sql import Raw
from recorder.store.vocabulary import UNSUCCESSFUL_EXECUTION

DAY_MS = 86_400_000
PERCENTILES = (0.5, 0.95, 0.99)
MAX_STEP_NAMES = 200
# Callback wait buckets: upper bounds in ms (the last one open-ended).
WAIT_BUCKETS = (
    (1_000, "< 1 s"),
    (10_000, "1-10 s"),
    (60_000, "10 s-1 min"),
    (600_000, "1-10 min"),
    (3_600_000, "10 min-1 h"),
    (DAY_MS, "1 h-1 d"),
    (None, "> 1 d"),
)
_NICE_BUCKETS = (60_000, 300_000, 900_000, 3_600_000, 3 * 3_600_000, 6 * 3_600_000, DAY_MS, 7 * DAY_MS)


@dataclass(frozen=True)
class Window:
    since_ms: int
    until_ms: int

    @classmethod
    def last(cls, ms: int = DAY_MS, now_ms: int | None = None) -> Window:
        until = now_ms if now_ms is not None else int(time.time() * 1000)
        return cls(until - ms, until)

    @property
    def bucket_ms(self) -> int:
        """A round bucket width giving at most ~48 buckets over the window."""
        span = max(1, self.until_ms - self.since_ms)
        for width in _NICE_BUCKETS:
            if span / width <= 48:
                return width
        return -(-span // 48)


@dataclass(frozen=True)
class StepStats:
    name: str
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    retry_rate: float  # attempts beyond the first, per step run (one run per execution)
    failure_rate: float


@dataclass(frozen=True)
class Bucket:
    start_ms: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Distribution:
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    histogram: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class FunctionStats:
    function: str
    window: Window
    executions: dict[str, int]
    over_time: tuple[Bucket, ...]
    bucket_ms: int
    steps: tuple[StepStats, ...]
    active_ms: int  # invoked time, summed over the executions
    suspended_ms: int  # wall-clock time (to the end, or to now) not invoked
    invocations: int
    invocations_per_execution: tuple[tuple[int, int], ...]  # (invocations, executions with that many)
    callback_waits: Distribution

    @property
    def total(self) -> int:
        return sum(self.executions.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "since": self.window.since_ms,
            "until": self.window.until_ms,
            "executions": self.executions,
            "steps": [
                {
                    "name": s.name,
                    "count": s.count,
                    "p50Ms": s.p50_ms,
                    "p95Ms": s.p95_ms,
                    "p99Ms": s.p99_ms,
                    "retryRate": s.retry_rate,
                    "failureRate": s.failure_rate,
                }
                for s in self.steps
            ],
            "executionsOverTime": {
                "bucketMs": self.bucket_ms,
                "buckets": [{"startMs": b.start_ms, "counts": b.counts} for b in self.over_time],
            },
            "time": {"activeMs": self.active_ms, "suspendedMs": self.suspended_ms},
            "invocations": {
                "total": self.invocations,
                "perExecution": round(self.invocations / self.total, 3) if self.total else None,
                "histogram": [{"invocations": k, "executions": n} for k, n in self.invocations_per_execution],
            },
            "callbackWaits": {
                "count": self.callback_waits.count,
                "p50Ms": self.callback_waits.p50_ms,
                "p95Ms": self.callback_waits.p95_ms,
                "p99Ms": self.callback_waits.p99_ms,
                "histogram": [{"bucket": b, "count": n} for b, n in self.callback_waits.histogram],
            },
        }


_IN_WINDOW = "e.function_name = :f AND e.start_ms >= :since AND e.start_ms < :until"


@dataclass(frozen=True)
class _Group:
    count: int  # rows in the group
    sums: tuple[int, ...]
    percentiles: tuple[float | None, ...]  # of the group's non-NULL values, one per PERCENTILES


def _grouped(
    raw: Raw, group: str, value: str, sums: tuple[str, ...], source: str, params: dict[str, Any]
) -> dict[Any, _Group]:
    """One pass over ``source`` (FROM ... WHERE ...) per ``group``: the row count, each of
    ``sums`` summed, and the percentiles of ``value`` (NULLs left out, as percentile_cont does)."""
    sum_cols = "".join(f", SUM({x})" for x in sums)
    out: dict[Any, _Group] = {}
    if raw.postgres:
        cols = ", ".join(f"percentile_cont({p}) WITHIN GROUP (ORDER BY {value})" for p in PERCENTILES)
        for row in raw.all(f"SELECT {group}, COUNT(*){sum_cols}, {cols} {source} GROUP BY {group}", params):
            k = len(sums)
            out[row[0]] = _Group(
                int(row[1]),
                tuple(int(x or 0) for x in row[2 : 2 + k]),
                tuple(None if v is None else round(float(v), 1) for v in row[2 + k :]),
            )
        return out
    # SQLite has no percentile_cont. Its equivalent: count each distinct value per group
    # (durations in ms repeat a lot, so this is far smaller than the rows), a running total
    # over them (a window), and keep the values holding the two ranks around p * (n - 1).
    inputs = "".join(f", SUM({x}) AS s{i}" for i, x in enumerate(sums))
    summed = "".join(f", SUM(s{i})" for i in range(len(sums)))
    covers = " OR ".join(
        f"(cum.upto - cum.c < {r} AND {r} <= cum.upto)"
        for p in PERCENTILES
        for r in (f"(1 + CAST({p} * (agg.n - 1) AS INTEGER))", f"MIN(agg.n, 2 + CAST({p} * (agg.n - 1) AS INTEGER))")
    )
    rows = raw.all(
        f"WITH h AS MATERIALIZED (SELECT {group} AS g, {value} AS d, COUNT(*) AS c{inputs} {source} "
        f"GROUP BY {group}, {value}), "
        f"agg AS (SELECT g, SUM(c) AS n_all, SUM(CASE WHEN d IS NULL THEN 0 ELSE c END) AS n{summed} "
        "FROM h GROUP BY g), "
        "cum AS (SELECT g, d, c, SUM(c) OVER (PARTITION BY g ORDER BY d) AS upto FROM h WHERE d IS NOT NULL) "
        f"SELECT agg.*, cum.d, cum.upto, cum.c FROM agg LEFT JOIN cum ON cum.g = agg.g AND ({covers})",
        params,
    )
    spans: dict[Any, list[tuple[int, int, float]]] = {}
    heads: dict[Any, Sequence[Any]] = {}
    for row in rows:
        heads[row[0]] = row
        if row[-3] is not None:
            spans.setdefault(row[0], []).append((int(row[-2]) - int(row[-1]), int(row[-2]), float(row[-3])))

    def at(g: Any, rank: int) -> float:
        return next(v for after, upto, v in spans[g] if after < rank <= upto)

    for g, row in heads.items():
        n = int(row[2])
        pcts: list[float | None] = []
        for p in PERCENTILES:
            if n == 0:
                pcts.append(None)
                continue
            rank = p * (n - 1)
            lo = int(rank) + 1
            lo_v, hi_v = at(g, lo), at(g, min(lo + 1, n))
            pcts.append(round(lo_v + (rank - int(rank)) * (hi_v - lo_v), 1))
        out[g] = _Group(int(row[1]), tuple(int(x or 0) for x in row[3 : 3 + len(sums)]), tuple(pcts))
    return out


def function_stats(db: Database, function: str, window: Window, now_ms: int | None = None) -> FunctionStats:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    params = {"f": function, "since": window.since_ms, "until": window.until_ms, "w": window.bucket_ms, "now": now}
    # Three independent reads, each in its own transaction on its own connection: the
    # database runs the steps (the heavy one) beside the others.
    with ThreadPoolExecutor(3, thread_name_prefix="durascope-stats") as pool:
        runs = pool.submit(_executions_part, db, window, params)
        steps = pool.submit(_steps_part, db, params)
        times = pool.submit(_callback_waits, db, params)
        executions, over_time, wall_ms, active_ms, invocations, per_execution = runs.result()
        step_stats = steps.result()
        waits = times.result()
    return FunctionStats(
        function,
        window,
        executions,
        over_time,
        window.bucket_ms,
        step_stats,
        min(active_ms, wall_ms),
        max(0, wall_ms - active_ms),
        invocations,
        per_execution,
        waits,
    )


def _executions_part(
    db: Database, window: Window, params: dict[str, Any]
) -> tuple[dict[str, int], tuple[Bucket, ...], int, int, int, tuple[tuple[int, int], ...]]:
    with db.read_raw() as raw:
        executions = {
            str(st): int(n)
            for st, n in raw.all(
                f"SELECT e.status, COUNT(*) FROM executions e WHERE {_IN_WINDOW} GROUP BY e.status", params
            )
        }
        by_bucket: dict[int, dict[str, int]] = {}
        for b, st, n in raw.all(
            f"SELECT (e.start_ms - :since) / :w AS b, e.status, COUNT(*) FROM executions e WHERE {_IN_WINDOW} "
            "GROUP BY (e.start_ms - :since) / :w, e.status",
            params,
        ):
            by_bucket.setdefault(int(b), {})[str(st)] = int(n)
        wall, active, invocations = raw.one(
            f"SELECT SUM(COALESCE(e.end_ms, :now) - e.start_ms), SUM(e.active_ms), SUM(e.invocation_count) "
            f"FROM executions e WHERE {_IN_WINDOW}",
            params,
        ) or (0, 0, 0)
        per_execution = tuple(
            (int(k), int(n))
            for k, n in raw.all(
                f"SELECT e.invocation_count, COUNT(*) FROM executions e WHERE {_IN_WINDOW} "
                "GROUP BY e.invocation_count ORDER BY e.invocation_count",
                params,
            )
        )
    bucket = window.bucket_ms
    n_buckets = -(-(window.until_ms - window.since_ms) // bucket)
    over_time = tuple(Bucket(window.since_ms + i * bucket, by_bucket.get(i, {})) for i in range(n_buckets))
    return (
        dict(sorted(executions.items())),
        over_time,
        int(wall or 0),
        int(active or 0),
        int(invocations or 0),
        per_execution,
    )


def _steps_part(db: Database, params: dict[str, Any]) -> tuple[StepStats, ...]:
    with db.read_raw() as raw:
        by_step = _grouped(
            raw,
            "r.name",
            "r.duration_ms",
            ("r.retries", "r.failed"),
            "FROM step_runs r WHERE r.function_name = :f AND r.exec_start_ms >= :since AND r.exec_start_ms < :until",
            params,
        )
    busiest = sorted(by_step.items(), key=lambda kv: (-kv[1].count, str(kv[0] or "")))[:MAX_STEP_NAMES]
    return tuple(
        StepStats(
            str(name or ""),
            g.count,
            g.percentiles[0],
            g.percentiles[1],
            g.percentiles[2],
            round(g.sums[0] / g.count, 4),
            round(g.sums[1] / g.count, 4),
        )
        for name, g in busiest
    )


def _callback_waits(db: Database, params: dict[str, Any]) -> Distribution:
    """How long answered callbacks waited."""
    with db.read_raw() as raw:
        cb_source = (
            f"FROM executions e JOIN callbacks c ON c.execution_id = e.execution_id "
            f"WHERE {_IN_WINDOW} AND c.end_ms IS NOT NULL"
        )
        waits = _grouped(raw, "1", "(c.end_ms - c.started_ms)", (), cb_source, params).get(1)
        cases = " ".join(
            f"WHEN c.end_ms - c.started_ms < {upper} THEN {i}"
            for i, (upper, _) in enumerate(WAIT_BUCKETS)
            if upper is not None
        )
        bucket_of = f"CASE {cases} ELSE {len(WAIT_BUCKETS) - 1} END"
        counts = {
            int(b): int(n)
            for b, n in raw.all(f"SELECT {bucket_of} AS b, COUNT(*) {cb_source} GROUP BY {bucket_of}", params)
        }
    p50, p95, p99 = waits.percentiles if waits else (None, None, None)
    histogram = tuple((label, counts.get(i, 0)) for i, (_, label) in enumerate(WAIT_BUCKETS))
    return Distribution(sum(n for _, n in histogram), p50, p95, p99, histogram)


@dataclass(frozen=True)
class FunctionGlance:
    """One function's last window at a glance, for the functions index."""

    name: str
    handler: str | None  # None: seen in executions, not registered here
    executions: dict[str, int]
    p50_ms: float | None  # of finished executions' durations
    p95_ms: float | None

    @property
    def total(self) -> int:
        return sum(self.executions.values())

    @property
    def failure_rate(self) -> float | None:
        ended = sum(n for st, n in self.executions.items() if st != "RUNNING")
        bad = sum(n for st, n in self.executions.items() if st in UNSUCCESSFUL_EXECUTION)
        return round(bad / ended, 4) if ended else None


def functions_glance(db: Database, registered: dict[str, str], window: Window) -> list[FunctionGlance]:
    """Every registered function (and any other function with executions in the window)."""
    params = {"since": window.since_ms, "until": window.until_ms}
    where = "e.start_ms >= :since AND e.start_ms < :until"
    with db.read() as s:
        raw = Raw(s.connection())
        counts: dict[str, dict[str, int]] = {}
        for fn, st, n in raw.all(
            f"SELECT e.function_name, e.status, COUNT(*) FROM executions e WHERE {where} "
            "GROUP BY e.function_name, e.status",
            params,
        ):
            counts.setdefault(str(fn), {})[str(st)] = int(n)
        durations = _grouped(
            raw, "e.function_name", "(e.end_ms - e.start_ms)", (), f"FROM executions e WHERE {where}", params
        )
    names = sorted(set(registered) | set(counts))
    return [
        FunctionGlance(
            n,
            registered.get(n),
            dict(sorted(counts.get(n, {}).items())),
            *(durations[n].percentiles[:2] if n in durations else (None, None)),
        )
        for n in names
    ]
