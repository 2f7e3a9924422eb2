"""What every fault test checks once the fault is over (shared by the fault tests):

* every execution is terminal, with the status expected;
* every history is gap-free (EventId 1..n);
* the projections equal what ``durascope db rebuild-projections`` computes from the log
  (``recorder.store.projector.rebuild``, the code behind that command);
* no step that had completed before the fault ran again (a ledger file per step, written
  by ``tests/handlers/th_faults.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from recorder.api import Durascope
from recorder.store.projector import rebuild

PROJECTIONS = {
    "executions": "execution_id",
    "operations": "execution_id, op_id",
    "callbacks": "callback_id",
    "timers": "execution_id, kind, op_id",
}


def completed_steps(ds: Durascope, arns: dict[str, str]) -> dict[str, set[str]]:
    """Per execution name, the steps whose completion is in the log now."""
    return {name: {e["Name"] for e in ds.history(arn) if e["EventType"] == "StepSucceeded"}
            for name, arn in arns.items()}


def ledger_count(ledger: Path, name: str, step: str) -> int:
    path = ledger / f"{name}.{step}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {order}"))]
            for t, order in PROJECTIONS.items()}


def assert_projections_match_rebuild(ds: Durascope) -> None:
    """In one write transaction (nothing else writes meanwhile): the rows, a rebuild from
    the log, the rows again."""
    with ds.db.write() as conn:
        before = _snapshot(conn)
        rebuild(conn)
        after = _snapshot(conn)
    for table in PROJECTIONS:
        assert before[table] == after[table], f"{table} differs from its rebuild from the log"


def assert_recovered(ds: Durascope, arns: dict[str, str], ledger: Path, steps: int,
                     completed_before: dict[str, set[str]], status: str = "SUCCEEDED") -> None:
    """The checks after a fault, for executions of ``th_faults.ledgered`` named by ``arns``
    (name -> ARN) with ``steps`` steps each."""
    for name, arn in arns.items():
        summary = ds.describe(arn)
        assert summary.status == status, (name, summary.status, summary.error)
        history = ds.history(arn)
        assert [e["EventId"] for e in history] == list(range(1, len(history) + 1)), f"{name}: gap in its history"
        for i in range(steps):
            step = f"step-{i}"
            runs = ledger_count(ledger, name, step)
            if step in completed_before.get(name, set()):
                assert runs == 1, f"{name} {step} had completed before the fault but ran {runs} times"
            elif status == "SUCCEEDED":
                assert runs >= 1, f"{name} {step} never ran"
    assert_projections_match_rebuild(ds)
