"""The one dated price table behind ``recorder.cost``: us-east-1, x86, on-demand, each
price with the page it comes from, and the parsers of the settings that override it
(``DURASCOPE_COST_PRICES``, ``DURASCOPE_COST_MEMORY_MB``; read by ``recorder.config``).

A leaf module: settings parse their values here without importing the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PRICES_AS_OF = "2026-12-05"
DEFAULT_MEMORY_MB = 128


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


# us-east-1, x86, on-demand, read on the date above. The free tiers are not applied.
# The durable-function prices could not be read on AWS's page itself (only the start of an
# archived copy of it was readable here, 2026-12-05); they match two independent
# transcriptions of that page (one dated 2026-09-20, whose example is 1M executions x 4
# durable operations = $32), so each says so in its source.
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_UNCONFIRMED = " (not read on that page: as transcribed from it by third parties, 2026-09; check before relying on it)"
PRICES: dict[str, Price] = {
    "lambdaRequest": Price(0.20 / 1_000_000, "request", _LAMBDA),
    "lambdaGbSecond": Price(0.0000166667, "GB-second (x86)", _LAMBDA),
    "durableOperation": Price(8.00 / 1_000_000, "durable operation", _LAMBDA + _UNCONFIRMED),
    "durableDataWrittenGb": Price(0.25, "GB written", _LAMBDA + _UNCONFIRMED),
    "durableDataRetainedGbMonth": Price(0.15, "GB-month retained", _LAMBDA + _UNCONFIRMED),
    "stepFunctionsStateTransition": Price(
        0.025 / 1_000, "state transition (Standard)", "https://aws.amazon.com/step-functions/pricing/"
    ),
}


def parse_price_overrides(text: str | None) -> dict[str, float]:
    """``DURASCOPE_COST_PRICES``: a JSON object of price names (those of ``PRICES``) to USD."""
    if not text or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError('DURASCOPE_COST_PRICES must be a JSON object, e.g. {"durableOperation": 0.000008}') from None
    if not isinstance(raw, dict):
        raise ValueError("DURASCOPE_COST_PRICES must be a JSON object of price names to USD")
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
            raise ValueError(
                "DURASCOPE_COST_MEMORY_MB must be function=MB[,function=MB][,*=MB] with MB from 128 to 10240"
            )
        out[name.strip()] = int(mb)
    return out
