"""Server time of a viewer page through Flask's test client (no network), shared by the
viewer benchmarks."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PageTime:
    median_ms: float
    worst_ms: float
    size: int
    status: int


def timed(client: Any, url: str, runs: int = 5) -> PageTime:
    """Median and worst of ``runs`` requests after one untimed request (which loads the
    templates and warms the caches)."""
    client.get(url)
    samples, size, status = [], 0, 0
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(url)
        samples.append((time.perf_counter() - t) * 1000)
        size, status = len(r.data), r.status_code
    return PageTime(statistics.median(samples), max(samples), size, status)
