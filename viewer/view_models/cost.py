"""What an execution, or a function per 1,000 executions, would cost on AWS (``recorder.cost``),
as the execution and function pages show it and their twins return it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recorder import cost
from recorder.api import Durascope
from recorder.arns import ExecutionArn
from recorder.stats import Window

_LINES = (
    ("requests", "Requests", "invocations"),
    ("gbSeconds", "Compute", "GB-seconds"),
    ("durableOperations", "Durable operations", "operations"),
    ("dataWrittenGb", "Data written", "GB"),
    ("dataRetainedGbMonths", "Data retained", "GB-months"),
)


@dataclass(frozen=True)
class CostLine:
    label: str
    quantity: str
    usd: str


@dataclass(frozen=True)
class CostView:
    basis: str
    lambda_usd: str
    step_functions_usd: str
    lines: tuple[CostLine, ...]  # the Lambda durable side
    transitions: str
    memory_mb: int
    prices_as_of: str
    estimate: cost.Estimate

    def to_json(self) -> dict[str, Any]:
        return self.estimate.to_json()


def usd(value: float) -> str:
    """Dollars with two significant digits below a cent: $0.0000004, $0.000048, $0.044, $0.10, $12.30."""
    if value <= 0:
        return "$0"
    if value < 0.01:
        decimals = min(12, 1 - math.floor(math.log10(value)))
        return f"${value:.{decimals}f}".rstrip("0").rstrip(".")
    if value < 1:
        # Up to four decimals, never fewer than cents: $0.0496, $0.10.
        text = f"{value:.4f}".rstrip("0")
        return "$" + (text if len(text.split(".")[1]) >= 2 else f"{value:.2f}")
    return f"${value:,.2f}"


def _quantity(value: float, unit: str) -> str:
    if unit.startswith("GB"):
        # Histories are kilobytes: say so rather than 2.3e-06 GB.
        for scale, name in ((1.0, "GB"), (1 / 1024, "MB"), (1 / 1024**2, "KB")):
            if value >= scale or name == "KB":
                return f"{value / scale:,.1f} {name}{unit[2:]}"
    if value == int(value):
        return f"{int(value):,} {unit}"
    return f"{value:,.4g} {unit}"


def _view(est: cost.Estimate) -> CostView:
    lam = est.breakdown["lambdaDurable"]
    lines = tuple(
        CostLine(label, _quantity(lam[key]["quantity"], unit), usd(lam[key]["usd"])) for key, label, unit in _LINES
    )
    transitions = est.breakdown["stepFunctionsStandard"]["stateTransitions"]["quantity"]
    return CostView(
        str(est.breakdown.get("basis", "")),
        usd(est.lambda_durable_usd),
        usd(est.step_functions_standard_usd),
        lines,
        _quantity(transitions, "state transitions"),
        int(est.breakdown["memoryMb"]),
        cost.PRICES_AS_OF,
        est,
    )


def price_table(ds: Durascope) -> cost.PriceTable:
    return cost.PriceTable.of(ds.settings.cost_prices, ds.settings.cost_memory_mb)


def build_execution_cost(ds: Durascope, arn: str) -> CostView:
    summary = ds.describe(arn)  # 404 for an unknown execution
    execution_id = ExecutionArn.parse(summary.arn).execution_id
    return _view(cost.execution_cost(ds.db, execution_id, summary.function, price_table(ds)))


def build_function_cost(ds: Durascope, name: str, window: Window) -> CostView:
    return _view(cost.function_cost(ds.db, name, window.since_ms, window.until_ms, price_table(ds)))
