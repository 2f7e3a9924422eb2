"""What an execution, or a function per 1,000 executions, would cost on AWS: as Lambda
durable functions, and as the same workflow on Step Functions Standard.

One dated price table (``PRICES``, us-east-1, x86, on-demand, no free tier), each price
with the page it comes from. ``DURASCOPE_COST_PRICES`` overrides any of them (JSON:
``{"durableOperation": 0.000009}``) and ``DURASCOPE_COST_MEMORY_MB`` sets the memory
size a function is billed at (``orders=512,*=256``; default 128 MB); both are read by
``recorder.config``.

Lambda durable functions, from the history:

* requests: one per invocation (the ``InvocationCompleted`` events);
* compute: GB-seconds of the invocations' durations at the function's memory size;
* durable operations: the execution's start, every operation it started (steps, waits,
  callbacks, child contexts, chained invokes) and every step attempt beyond the first;
* data written: the bytes of the execution's history events (the checkpointed inputs,
  results and errors with their envelopes: an upper bound of what the service stores);
* data retained: those bytes for the execution's retention period, in GB-months.

Step Functions Standard: one state transition per step (chained invokes included, each
retry attempt too), wait, callback and parallel branch or map iteration, as Standard
workflows bill every state entered and every retry. The Lambda functions a state machine
would call for its tasks are not counted (the durable side's compute is).

Every quantity is an SQL aggregate over the projections and the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from recorder.prices import PRICES, PRICES_AS_OF, Price
from recorder.store.db import Database
from recorder.store.sql import Raw

GB = 1024 ** 3
DEFAULT_MEMORY_MB = 128
SAMPLE_EXECUTIONS = 1000  # a function's cost per 1,000 executions is averaged over its latest this many
DAYS_PER_MONTH = 30.0


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]
    memory_mb: dict[str, int]
    overridden: tuple[str, ...] = ()

    @classmethod
    def of(cls, overrides: Mapping[str, float] | None = None, memory_mb: Mapping[str, int] | None = None) -> PriceTable:
        prices = dict(PRICES)
        for key, usd in (overrides or {}).items():
            prices[key] = replace(prices[key], usd=usd, source="DURASCOPE_COST_PRICES")
        return cls(prices, dict(memory_mb or {}), tuple(sorted(overrides or {})))

    def memory_of(self, function: str) -> int:
        return self.memory_mb.get(function, self.memory_mb.get("*", DEFAULT_MEMORY_MB))

    def usd(self, key: str) -> float:
        return self.prices[key].usd


@dataclass(frozen=True)
class Usage:
    """What a set of executions used, in the units AWS bills."""

    executions: int
    invocations: int
    active_ms: int
    durable_operations: int
    state_transitions: int
    bytes_written: int
    byte_days_retained: int  # bytes x retention days, summed per execution


@dataclass(frozen=True)
class Estimate:
    lambda_durable_usd: float
    step_functions_standard_usd: float
    breakdown: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"lambdaDurableUsd": self.lambda_durable_usd,
                "stepFunctionsStandardUsd": self.step_functions_standard_usd,
                "pricesAsOf": PRICES_AS_OF, "breakdown": self.breakdown}


def estimate(usage: Usage, memory_mb: int, table: PriceTable, scale: float = 1.0) -> Estimate:
    """USD for ``usage`` times ``scale`` (1 for one execution, 1000 / n for per 1,000)."""
    gb_seconds = usage.active_ms / 1000 * memory_mb / 1024
    lines = {
        "requests": (usage.invocations, table.usd("lambdaRequest")),
        "gbSeconds": (gb_seconds, table.usd("lambdaGbSecond")),
        "durableOperations": (usage.durable_operations, table.usd("durableOperation")),
        "dataWrittenGb": (usage.bytes_written / GB, table.usd("durableDataWrittenGb")),
        "dataRetainedGbMonths": (usage.byte_days_retained / GB / DAYS_PER_MONTH,
                                 table.usd("durableDataRetainedGbMonth")),
    }
    lam = {k: {"quantity": round(q * scale, 12), "usd": round(q * p * scale, 12)} for k, (q, p) in lines.items()}
    transitions = usage.state_transitions * scale
    sfn_usd = transitions * table.usd("stepFunctionsStateTransition")
    lam_usd = sum(v["usd"] for v in lam.values())
    breakdown = {
        "memoryMb": memory_mb,
        "lambdaDurable": lam,
        "stepFunctionsStandard": {"stateTransitions": {"quantity": round(transitions, 6), "usd": round(sfn_usd, 12)}},
        "prices": {k: {"usd": p.usd, "unit": p.unit, "source": p.source} for k, p in table.prices.items()},
    }
    return Estimate(round(lam_usd, 12), round(sfn_usd, 12), breakdown)


def _usage(raw: Raw, selected: str, params: dict[str, Any]) -> Usage:
    """``selected``: a SQL condition on ``e`` (executions) picking the executions to count."""
    executions, invocations = raw.one(
        f"SELECT COUNT(*), SUM(e.invocation_count) FROM executions e WHERE {selected}", params) or (0, 0)
    ops, retries, transitions = raw.one(
        "SELECT COUNT(*), SUM(CASE WHEN o.type = 'STEP' AND o.attempt > 1 THEN o.attempt - 1 ELSE 0 END), "
        "SUM(CASE WHEN o.type IN ('STEP', 'WAIT', 'CALLBACK', 'CHAINED_INVOKE') "
        "OR (o.type = 'CONTEXT' AND o.sub_type IN ('ParallelBranch', 'MapIteration')) THEN 1 ELSE 0 END) "
        f"FROM executions e JOIN operations o ON o.execution_id = e.execution_id WHERE {selected} "
        "AND o.type <> 'EXECUTION'", params) or (0, 0, 0)
    size = "OCTET_LENGTH(ev.body)" if raw.postgres else "LENGTH(CAST(ev.body AS BLOB))"
    written, retained = raw.one(
        f"SELECT SUM({size}), SUM({size} * e.retention_days) FROM executions e "
        f"JOIN events ev ON ev.execution_id = e.execution_id WHERE {selected} AND ev.event_id IS NOT NULL",
        params) or (0, 0)
    if raw.postgres:
        start, end = (f"CAST(CAST(ev.body AS json) -> 'InvocationCompletedDetails' ->> '{f}' AS BIGINT)"
                      for f in ("StartTimestamp", "EndTimestamp"))
    else:
        start, end = (f"json_extract(ev.body, '$.InvocationCompletedDetails.{f}')"
                      for f in ("StartTimestamp", "EndTimestamp"))
    active = raw.one(f"SELECT SUM({end} - {start}) FROM executions e JOIN events ev ON ev.execution_id = "
                     f"e.execution_id WHERE {selected} AND ev.event_type = 'InvocationCompleted'", params)
    executions = int(executions or 0)
    retries = int(retries or 0)
    return Usage(executions, int(invocations or 0), int((active or [0])[0] or 0),
                 executions + int(ops or 0) + retries, int(transitions or 0) + retries,
                 int(written or 0), int(retained or 0))


def execution_cost(db: Database, execution_id: str, function: str, table: PriceTable) -> Estimate:
    with db.read() as s:
        usage = _usage(Raw(s.connection()), "e.execution_id = :id", {"id": execution_id})
    out = estimate(usage, table.memory_of(function), table)
    out.breakdown["basis"] = "one execution"
    out.breakdown["usage"] = _usage_json(usage)
    return out


def function_cost(db: Database, function: str, since_ms: int, until_ms: int, table: PriceTable) -> Estimate:
    """Per 1,000 executions, averaged over the function's latest executions in the window
    (at most ``SAMPLE_EXECUTIONS``, so the figure costs the same to compute at any volume)."""
    params = {"f": function, "since": since_ms, "until": until_ms}
    selected = ("e.execution_id IN (SELECT x.execution_id FROM executions x WHERE x.function_name = :f "
                "AND x.start_ms >= :since AND x.start_ms < :until ORDER BY x.start_ms DESC "
                f"LIMIT {SAMPLE_EXECUTIONS})")
    with db.read() as s:
        usage = _usage(Raw(s.connection()), selected, params)
    scale = 1000 / usage.executions if usage.executions else 0.0
    out = estimate(usage, table.memory_of(function), table, scale)
    out.breakdown["basis"] = (f"per 1,000 executions, averaged over the latest {usage.executions:,} executions "
                              "started in the window" if usage.executions else "no executions in the window")
    out.breakdown["sampledExecutions"] = usage.executions
    out.breakdown["usage"] = _usage_json(usage)
    return out


def _usage_json(u: Usage) -> dict[str, int]:
    return {"executions": u.executions, "invocations": u.invocations, "activeMs": u.active_ms,
            "durableOperations": u.durable_operations, "stateTransitions": u.state_transitions,
            "bytesWritten": u.bytes_written, "byteDaysRetained": u.byte_days_retained}
