"""The control plane's one transaction helper: every commit tells the listeners what it owes.

``begin_invocation`` may record a lost invocation (its lease expired) and then return
without claiming: the execution either failed (too many lost invocations) or wants a
retry later. Both commits owe the engines news, which they used to swallow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recorder.api import Durascope
from tests.conftest import register


@pytest.fixture
def strict(database_url: str) -> Iterator[Durascope]:
    """No engine; a lease that has expired as soon as it is taken; one attempt per execution."""
    d = Durascope.open(database_url, run_engine=False, lease_seconds=0.0, max_invocation_attempts=1)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def patient(database_url: str) -> Iterator[Durascope]:
    """No engine; an expired lease at once; lost invocations retried after an hour."""
    d = Durascope.open(
        database_url, run_engine=False, lease_seconds=0.0, max_invocation_attempts=5, invocation_retry_seconds=3600.0
    )
    try:
        yield d
    finally:
        d.close()


def _start_and_lose_one(d: Durascope) -> tuple[str, str]:
    register(d, "add-one", "th_basic:add_one")
    started = d.control.start_execution("add-one", '{"a": 1}')
    inv = d.control.begin_invocation(started.execution_id, "engine-that-dies")
    assert inv is not None
    return started.arn, started.execution_id


def test_closing_a_lost_invocations_execution_tells_the_close_listeners(strict: Durascope) -> None:
    arn, execution_id = _start_and_lose_one(strict)
    closed: list[list[str]] = []
    strict.control.add_close_listener(closed.append)

    assert strict.control.begin_invocation(execution_id, "another-engine") is None

    assert strict.describe(arn).status == "FAILED"
    assert closed == [[arn]]


def test_a_lost_invocations_retry_is_announced_to_the_engines(patient: Durascope) -> None:
    _arn, execution_id = _start_and_lose_one(patient)
    heard: list[tuple[set[str], list[int]]] = []
    patient.control.add_listener(lambda invoke, dues: heard.append((invoke, dues)))

    assert patient.control.begin_invocation(execution_id, "another-engine") is None  # the retry is an hour away

    assert len(heard) == 1
    invoke, dues = heard[0]
    assert invoke == {execution_id}
    assert dues and min(dues) > 0
    owed = dict(patient.control.owed_invocations())
    assert owed[execution_id] in dues
