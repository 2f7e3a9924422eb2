"""AWS prices the cost estimates use (``recorder.cost``), and the settings that override them.

A leaf: ``recorder.config`` parses the overrides from the environment without loading
the store (``recorder.cost`` reads usage from it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PRICES_AS_OF = "2026-12-05"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


# us-east-1, x86, on-demand, read on the date above. The free tiers are not applied.
PRICES: dict[str, Price] = {
    "lambdaRequest": Price(0.20 / 1_000_000, "request", "https://aws.amazon.com/lambda/pricing/"),
    "lambdaGbSecond": Price(0.0000166667, "GB-second (x86)", "https://aws.amazon.com/lambda/pricing/"),
    "durableOperation": Price(8.00 / 1_000_000, "durable operation", "https://aws.amazon.com/lambda/pricing/"),
    "durableDataWrittenGb": Price(0.25, "GB written", "https://aws.amazon.com/lambda/pricing/"),
    "durableDataRetainedGbMonth": Price(0.15, "GB-month retained", "https://aws.amazon.com/lambda/pricing/"),
    "stepFunctionsStateTransition": Price(0.025 / 1_000, "state transition (Standard)",
                                          "https://aws.amazon.com/step-functions/pricing/"),
}


def parse_price_overrides(text: str | None) -> dict[str, float]:
    """``DURASCOPE_COST_PRICES``: a JSON object of price names (those of ``PRICES``) to USD."""
    if not text or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("DURASCOPE_COST_PRICES must be a JSON object, e.g. {\"durableOperation\": 0.000008}") from None
    if not isinstance(raw, dict):
        raise ValueError("DURASCOPE_COST_PRICES must be a JSON object of price names to USD")  # noqa: TRY004
    out: dict[str, float] = {}
    for key, value in raw.items():
        if key not in PRICES:
            raise ValueError(f"DURASCOPE_COST_PRICES: unknown price {key!r} (known: {', '.join(PRICES)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"DURASCOPE_COST_PRICES: {key} must be a number of USD, at least 0")
        out[key] = float(value)
    return out


def parse_memory_sizes(text: str | None) -> dict[str, int]:
    """``DURASCOPE_COST_MEMORY_MB``: ``function=MB`` pairs, ``*=MB`` for every other function."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, mb = item.strip().partition("=")
        if not sep or not name.strip() or not mb.strip().isdigit() or not 128 <= int(mb) <= 10_240:
            raise ValueError("DURASCOPE_COST_MEMORY_MB must be function=MB[,function=MB][,*=MB] with MB "
                             "from 128 to 10240")
        out[name.strip()] = int(mb)
    return out
