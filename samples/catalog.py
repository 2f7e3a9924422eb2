"""The registry of seed workflows: one place that says which function runs which handler.

The demo (``durascope demo``) and the tests register the samples from here, so a function
name, its handler and its execution timeout never drift apart. Standard library only, like
the samples themselves: a user can copy ``samples/`` into their own project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleFunction:
    """One function to register: ``handler`` is ``module:function`` importable from ``samples``."""

    name: str
    handler: str
    execution_timeout: int
    description: str


HOUR = 3600
DAY = 86400

CATALOG: tuple[SampleFunction, ...] = (
    SampleFunction("hello", "samples.hello:handler", HOUR, "Two steps around a one-second wait."),
    SampleFunction(
        "orders",
        "samples.orders:handler",
        HOUR,
        "Validate an order, pay through a flaky gateway (retries), wait a confirmation period, confirm.",
    ),
    SampleFunction(
        "orders-approval",
        "samples.orders:with_approval",
        DAY,
        "The order flow with a manager's approval callback before the payment.",
    ),
    SampleFunction(
        "order-saga",
        "samples.saga:handler",
        HOUR,
        "Reserve, charge, ship; on failure compensate in reverse order and end FAILED.",
    ),
    SampleFunction(
        "document-etl",
        "samples.document_etl:handler",
        DAY,
        "Extract, transform, wait for a reviewer's approval callback, load.",
    ),
    SampleFunction(
        "loan-origination",
        "samples.loan:handler",
        DAY,
        "Parallel credit/income/fraud checks, risk score, offer, underwriter and customer callbacks.",
    ),
    SampleFunction(
        "retry-then-succeed", "samples.failures:retry_then_succeed", HOUR, "A step that succeeds on its third attempt."
    ),
    SampleFunction(
        "exhausted-retries",
        "samples.failures:exhausted_retries",
        HOUR,
        "A step that fails until its retries are exhausted.",
    ),
    SampleFunction(
        "callback-timeout", "samples.failures:callback_timeout", HOUR, "A callback nobody answers: Callback.Timeout."
    ),
    SampleFunction(
        "execution-timeout",
        "samples.failures:execution_timeout",
        3,
        "Waits longer than its 3-second execution timeout: TIMED_OUT.",
    ),
    SampleFunction(
        "map-with-failures",
        "samples.failures:map_with_failures",
        HOUR,
        "A map where some items fail and the completion config tolerates them.",
    ),
    SampleFunction("long-wait", "samples.failures:long_wait", DAY, "Waits an hour, so it can be stopped."),
)


def by_name(name: str) -> SampleFunction:
    """The catalog entry called ``name`` (KeyError names the known ones)."""
    for sample in CATALOG:
        if sample.name == name:
            return sample
    raise KeyError(f"no sample function {name!r}; known: {', '.join(s.name for s in CATALOG)}")
