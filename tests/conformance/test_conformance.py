"""Conformance with ``aws-durable-execution-conformance-tests`` 1.0.0.

One test per requirement file and backend (ids like ``sqlite-step/1-11``). The
handler written for the requirement (``handlers/``) is registered as a function,
started with the requirement's ``Input``, its ``CallbackActions`` are played
against the ``CallbackStarted`` events, and once the execution has ended the
history is matched against ``ExpectedExecutionHistory`` (by EventId), the
outcome against ``ExpectedResult`` and the captured handler/plugin log records
against ``ExpectedLogs`` (the original suite reads CloudWatch; here handlers
write the same records to a local sink, see ``handlers/dconf_common.py``).

Requirements that do not apply to a single-machine engine are listed in
SKIPPED with the reason (the README lists them).
"""

from __future__ import annotations

import pytest
from requirements import Requirement, RequirementsNotFound, load_requirements

# requirement key -> reason it cannot apply to Durascope
SKIPPED: dict[str, str] = {}

try:
    REQUIREMENTS: list[Requirement] = load_requirements()
    NOT_FOUND: str | None = None
except RequirementsNotFound as err:  # reported by test_requirements_available, not a collection error
    REQUIREMENTS, NOT_FOUND = [], str(err)


def test_requirements_available() -> None:
    assert NOT_FOUND is None, NOT_FOUND
    assert len(REQUIREMENTS) == 155, f"expected the 155 requirement files of 1.0.0, found {len(REQUIREMENTS)}"


@pytest.mark.parametrize("req", REQUIREMENTS, ids=[r.key for r in REQUIREMENTS])
def test_requirement(durascope, req: Requirement) -> None:
    if req.key in SKIPPED:
        pytest.skip(SKIPPED[req.key])
    outcome = durascope.outcome(req)
    assert outcome.passed, outcome.report()
