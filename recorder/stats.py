"""Per-function statistics over a time window, computed by the database.

Everything here is an SQL aggregate over the projections (``executions``, ``operations``,
``callbacks``) and, for the time an execution spent invoked, the ``InvocationCompleted``
events: no Python loop over events or rows. Percentiles are ``percentile_cont`` on
PostgreSQL and the same interpolation written with window functions on SQLite
(``row_number`` over each group, the two neighbouring ranks of ``p * (n - 1)``), so both
databases give the same numbers.

The window selects executions by their start time: ``since <= start_ms < until``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recorder.store.db import Database
from recorder.store.sql import Raw

DAY_MS = 86_400_000
PERCENTILES = (0.5, 0.95, 0.99)
MAX_STEP_NAMES = 200
# Callback wait buckets: upper bounds in ms (the last one open-ended).
WAIT_BUCKETS = ((1_000, "< 1 s"), (10_000, "1-10 s"), (60_000, "10 s-1 min"), (600_000, "1-10 min"),
                (3_600_000, "10 min-1 h"), (DAY_MS, "1 h-1 d"), (None, "> 1 d"))
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
            "function": self.function, "since": self.window.since_ms, "until": self.window.until_ms,
            "executions": self.executions,
            "steps": [{"name": s.name, "count": s.count, "p50Ms": s.p50_ms, "p95Ms": s.p95_ms, "p99Ms": s.p99_ms,
                       "retryRate": s.retry_rate, "failureRate": s.failure_rate} for s in self.steps],
            "executionsOverTime": {"bucketMs": self.bucket_ms,
                                   "buckets": [{"startMs": b.start_ms, "counts": b.counts} for b in self.over_time]},
            "time": {"activeMs": self.active_ms, "suspendedMs": self.suspended_ms},
            "invocations": {"total": self.invocations,
                            "perExecution": round(self.invocations / self.total, 3) if self.total else None,
                            "histogram": [{"invocations": k, "executions": n}
                                          for k, n in self.invocations_per_execution]},
            "callbackWaits": {"count": self.callback_waits.count, "p50Ms": self.callback_waits.p50_ms,
                              "p95Ms": self.callback_waits.p95_ms, "p99Ms": self.callback_waits.p99_ms,
                              "histogram": [{"bucket": b, "count": n} for b, n in self.callback_waits.histogram]},
        }


_IN_WINDOW = "e.function_name = :f AND e.start_ms >= :since AND e.start_ms < :until"


@dataclass(frozen=True)
class _Group:
    count: int  # rows in the group
    sums: tuple[int, ...]
    percentiles: tuple[float | None, ...]  # of the group's non-NULL values, one per PERCENTILES


def _grouped(raw: Raw, group: str, value: str, sums: tuple[str, ...], source: str,
             params: dict[str, Any]) -> dict[Any, _Group]:
    """One pass over ``source`` (FROM ... WHERE ...) per ``group``: the row count, each of
    ``sums`` summed, and the percentiles of ``value`` (NULLs left out, as percentile_cont does)."""
    sum_cols = "".join(f", SUM({x})" for x in sums)
    out: dict[Any, _Group] = {}
    if raw.postgres:
        cols = ", ".join(f"percentile_cont({p}) WITHIN GROUP (ORDER BY {value})" for p in PERCENTILES)
        for row in raw.all(f"SELECT {group}, COUNT(*){sum_cols}, {cols} {source} GROUP BY {group}", params):
            k = len(sums)
            out[row[0]] = _Group(int(row[1]), tuple(int(x or 0) for x in row[2:2 + k]),
                                 tuple(None if v is None else round(float(v), 1) for v in row[2 + k:]))
        return out
    # SQLite has no percentile_cont: rank the values of each group once (row_number over a
    # window) and keep only the two ranks around p * (n - 1) for each p.
    inputs = "".join(f", {x} AS s{i}" for i, x in enumerate(sums))
    summed = "".join(f", SUM(s{i})" for i in range(len(sums)))
    ranks = ", ".join(f"{o} + CAST({p} * (agg.n - 1) AS INTEGER)" for p in PERCENTILES for o in (1, 2))
    rows = raw.all(
        f"WITH v AS MATERIALIZED (SELECT {group} AS g, {value} AS d{inputs} {source}), "
        f"agg AS (SELECT g, COUNT(*) AS n_all, COUNT(d) AS n{summed} FROM v GROUP BY g), "
        "ranked AS (SELECT g, d, row_number() OVER (PARTITION BY g ORDER BY d) AS rn FROM v WHERE d IS NOT NULL) "
        f"SELECT agg.*, ranked.rn, ranked.d FROM agg LEFT JOIN ranked ON ranked.g = agg.g AND ranked.rn IN ({ranks})",
        params)
    picked: dict[Any, dict[int, float]] = {}
    heads: dict[Any, Sequence[Any]] = {}
    for row in rows:
        heads[row[0]] = row
        if row[-2] is not None:
            picked.setdefault(row[0], {})[int(row[-2])] = float(row[-1])
    for g, row in heads.items():
        n = int(row[2])
        values = picked.get(g, {})
        pcts: list[float | None] = []
        for p in PERCENTILES:
            if n == 0:
                pcts.append(None)
                continue
            rank = p * (n - 1)
            lo = int(rank) + 1
            hi = min(lo + 1, n)
            pcts.append(round(values[lo] + (rank - int(rank)) * (values[hi] - values[lo]), 1))
        out[g] = _Group(int(row[1]), tuple(int(x or 0) for x in row[3:3 + len(sums)]), tuple(pcts))
    return out


def function_stats(db: Database, function: str, window: Window, now_ms: int | None = None) -> FunctionStats:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    bucket = window.bucket_ms
    params = {"f": function, "since": window.since_ms, "until": window.until_ms, "w": bucket, "now": now}
    with db.read() as s:
        raw = Raw(s.connection())
        executions = {str(st): int(n) for st, n in raw.all(
            f"SELECT e.status, COUNT(*) FROM executions e WHERE {_IN_WINDOW} GROUP BY e.status", params)}
        by_bucket: dict[int, dict[str, int]] = {}
        for b, st, n in raw.all(
                f"SELECT (e.start_ms - :since) / :w AS b, e.status, COUNT(*) FROM executions e WHERE {_IN_WINDOW} "
                "GROUP BY (e.start_ms - :since) / :w, e.status", params):
            by_bucket.setdefault(int(b), {})[str(st)] = int(n)
        n_buckets = -(-(window.until_ms - window.since_ms) // bucket)
        over_time = tuple(Bucket(window.since_ms + i * bucket, by_bucket.get(i, {})) for i in range(n_buckets))

        by_step = _grouped(raw, "o.name", "(o.end_ms - o.start_ms)",
                           ("CASE WHEN o.attempt > 1 THEN o.attempt - 1 ELSE 0 END",
                            "CASE WHEN o.status = 'FAILED' THEN 1 ELSE 0 END"),
                           f"FROM executions e JOIN operations o ON o.execution_id = e.execution_id "
                           f"WHERE {_IN_WINDOW} AND o.type = 'STEP'", params)
        busiest = sorted(by_step.items(), key=lambda kv: (-kv[1].count, str(kv[0] or "")))[:MAX_STEP_NAMES]
        steps = tuple(StepStats(str(name or ""), g.count, g.percentiles[0], g.percentiles[1], g.percentiles[2],
                                round(g.sums[0] / g.count, 4), round(g.sums[1] / g.count, 4)) for name, g in busiest)

        wall, invocations = raw.one(
            f"SELECT SUM(COALESCE(e.end_ms, :now) - e.start_ms), SUM(e.invocation_count) FROM executions e "
            f"WHERE {_IN_WINDOW}", params) or (0, 0)
        active = raw.one(
            f"SELECT SUM({_json_ms(raw, 'EndTimestamp')} - {_json_ms(raw, 'StartTimestamp')}) FROM executions e "
            f"JOIN events ev ON ev.execution_id = e.execution_id WHERE {_IN_WINDOW} "
            "AND ev.event_type = 'InvocationCompleted'", params)
        active_ms = int((active or [0])[0] or 0)
        per_execution = tuple((int(k), int(n)) for k, n in raw.all(
            f"SELECT e.invocation_count, COUNT(*) FROM executions e WHERE {_IN_WINDOW} "
            "GROUP BY e.invocation_count ORDER BY e.invocation_count", params))

        cb_source = (f"FROM executions e JOIN callbacks c ON c.execution_id = e.execution_id "
                     f"WHERE {_IN_WINDOW} AND c.end_ms IS NOT NULL")
        waits = _grouped(raw, "1", "(c.end_ms - c.started_ms)", (), cb_source, params).get(1)
        p50, p95, p99 = waits.percentiles if waits else (None, None, None)
        cases = " ".join(f"WHEN c.end_ms - c.started_ms < {upper} THEN {i}"
                         for i, (upper, _) in enumerate(WAIT_BUCKETS) if upper is not None)
        cb_hist: dict[int, int] = {int(b): int(n) for b, n in raw.all(f"SELECT CASE {cases} ELSE {len(WAIT_BUCKETS) - 1} END AS b, COUNT(*) {cb_source} "
                               f"GROUP BY CASE {cases} ELSE {len(WAIT_BUCKETS) - 1} END", params)}
    wall_ms = int(wall or 0)
    histogram = tuple((label, int(cb_hist.get(i, 0))) for i, (_, label) in enumerate(WAIT_BUCKETS))
    return FunctionStats(
        function, window, dict(sorted(executions.items())), over_time, bucket, steps, min(active_ms, wall_ms),
        max(0, wall_ms - active_ms), int(invocations or 0), per_execution,
        Distribution(sum(n for _, n in histogram), p50, p95, p99, histogram))



def _json_ms(raw: Raw, field: str) -> str:
    if raw.postgres:
        return f"CAST(CAST(ev.body AS json) -> 'InvocationCompletedDetails' ->> '{field}' AS BIGINT)"
    return f"json_extract(ev.body, '$.InvocationCompletedDetails.{field}')"


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
        bad = sum(n for st, n in self.executions.items() if st in ("FAILED", "TIMED_OUT", "STOPPED"))
        return round(bad / ended, 4) if ended else None


def functions_glance(db: Database, registered: dict[str, str], window: Window) -> list[FunctionGlance]:
    """Every registered function (and any other function with executions in the window)."""
    params = {"since": window.since_ms, "until": window.until_ms}
    where = "e.start_ms >= :since AND e.start_ms < :until"
    with db.read() as s:
        raw = Raw(s.connection())
        counts: dict[str, dict[str, int]] = {}
        for fn, st, n in raw.all(f"SELECT e.function_name, e.status, COUNT(*) FROM executions e WHERE {where} "
                                 "GROUP BY e.function_name, e.status", params):
            counts.setdefault(str(fn), {})[str(st)] = int(n)
        durations = _grouped(raw, "e.function_name", "(e.end_ms - e.start_ms)", (),
                             f"FROM executions e WHERE {where}", params)
    names = sorted(set(registered) | set(counts))
    return [FunctionGlance(n, registered.get(n), dict(sorted(counts.get(n, {}).items())),
                           *(durations[n].percentiles[:2] if n in durations else (None, None))) for n in names]
