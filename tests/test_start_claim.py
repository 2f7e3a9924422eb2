"""An execution started next to a local engine has its first invocation claimed by the
starting transaction (``ControlPlane.start_claimer``), not by a second one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.engine import lifecycle
from tests.conftest import register
from tests.test_engine import types


def _count_begins(ds: Durascope, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    begun: list[str] = []
    original = ds.control.begin_invocation

    def counting(execution_id: str, owner: str) -> Any:
        begun.append(execution_id)
        return original(execution_id, owner)

    monkeypatch.setattr(ds.control, "begin_invocation", counting)
    return begun


def test_the_first_invocation_is_claimed_when_the_execution_starts(
    ds: Durascope, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(ds, "add", "th_basic:add_one")
    begun = _count_begins(ds, monkeypatch)
    arn = ds.start("add", '{"a": 41}')
    summary = ds.wait(arn, 30)
    assert (summary.status, summary.result) == ("SUCCEEDED", "42")
    assert begun == []
    assert types(ds.history(arn)) == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]


def test_a_busy_engine_leaves_the_claim_to_its_threads(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = Durascope.open(database_url, max_concurrent_invocations=1)
    try:
        register(ds, "gated", "th_basic:gated")
        register(ds, "add", "th_basic:add_one")
        begun = _count_begins(ds, monkeypatch)
        gate = tmp_path / "gate"
        blocking = ds.start("gated", json.dumps({"gate": str(gate)}))  # holds the only slot
        queued = ds.start("add", "{}")
        assert begun == []
        gate.touch()
        assert ds.wait(blocking, 30).status == "SUCCEEDED"
        assert ds.wait(queued, 30).status == "SUCCEEDED"
        # The second start found no free slot, so an engine thread claimed it afterwards.
        assert len(begun) >= 1
    finally:
        ds.close()


def test_a_claim_that_does_not_commit_writes_nothing_and_frees_the_slot(
    ds: Durascope, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(ds, "add", "th_basic:add_one")

    def broken(*_args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(lifecycle, "claim", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ds.start("add", "{}", name="doomed")
    assert ds.engine is not None and ds.engine.idle()
    with ds.db.read_raw() as raw:
        assert raw.one("SELECT count(*) FROM executions")[0] == 0
        assert raw.one("SELECT count(*) FROM events")[0] == 0
    monkeypatch.undo()
    # The name is free: the failed start left no execution behind.
    arn = ds.start("add", "{}", name="doomed")
    assert ds.wait(arn, 30).status == "SUCCEEDED"
