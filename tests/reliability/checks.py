"""What every fault test checks once the fault is over (shared by the fault tests):

* every execution is terminal, with the status expected;
* every history is gap-free (EventId 1..n);
* the projections equal what ``durascope db rebuild-projections`` computes from the log
  (``recorder.store.projector.rebuild``, the code behind that command);
* no step that had completed before the fault ran again (a ledger file per step, written
  by ``tests/handlers/th_faults.py``);
* every status change was delivered to a webhook receiver, in order per execution, with
  the same ``webhook-id`` on every attempt and redelivery of one change
  (``assert_webhooks_delivered``);
* no process outlives the test (the ``process_tag`` fixture of ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from recorder.api import Durascope, wait_until
from recorder.followers import webhooks as wh
from recorder.store.projector import rebuild
from tests.webhook_receiver import Receiver, one_id_per_event, statuses

PROJECTIONS = {
    "executions": "execution_id",
    "operations": "execution_id, op_id",
    "callbacks": "callback_id",
    "timers": "execution_id, kind, op_id",
}


def completed_steps(ds: Durascope, arns: dict[str, str]) -> dict[str, set[str]]:
    """Per execution name, the steps whose completion is in the log now."""
    return {
        name: {e["Name"] for e in ds.history(arn) if e["EventType"] == "StepSucceeded"} for name, arn in arns.items()
    }


def gap_free(history: list[dict[str, Any]]) -> bool:
    return [e["EventId"] for e in history] == list(range(1, len(history) + 1))


def ledger_count(ledger: Path, name: str, step: str) -> int:
    path = ledger / f"{name}.{step}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {order}"))]
        for t, order in PROJECTIONS.items()
    }


def assert_projections_match_rebuild(ds: Durascope) -> None:
    """In one write transaction (nothing else writes meanwhile): the rows, a rebuild from
    the log, the rows again."""
    with ds.db.write() as conn:
        before = _snapshot(conn)
        rebuild(conn)
        after = _snapshot(conn)
    for table in PROJECTIONS:
        assert before[table] == after[table], f"{table} differs from its rebuild from the log"


def assert_recovered(
    ds: Durascope,
    arns: dict[str, str],
    ledger: Path,
    steps: int,
    completed_before: dict[str, set[str]],
    status: str = "SUCCEEDED",
) -> None:
    """The checks after a fault, for executions of ``th_faults.ledgered`` named by ``arns``
    (name -> ARN) with ``steps`` steps each."""
    for name, arn in arns.items():
        summary = ds.describe(arn)
        assert summary.status == status, (name, summary.status, summary.error)
        history = ds.history(arn)
        assert gap_free(history), f"{name}: gap in its history"
        for i in range(steps):
            step = f"step-{i}"
            runs = ledger_count(ledger, name, step)
            if step in completed_before.get(name, set()):
                assert runs == 1, f"{name} {step} had completed before the fault but ran {runs} times"
            elif status == "SUCCEEDED":
                assert runs >= 1, f"{name} {step} never ran"
    assert_projections_match_rebuild(ds)


# --- webhooks ---------------------------------------------------------------------------------

# Quick retries, so that minutes of outage take a second; the disable policy stays the default.
WEBHOOK_RETRY = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "poll_seconds": 0.01}
WEBHOOK_RETRY_ENV = {
    "DURASCOPE_WEBHOOKS_RETRY_BASE_SECONDS": "0.05",
    "DURASCOPE_WEBHOOKS_RETRY_MAX_SECONDS": "0.2",
    "DURASCOPE_WEBHOOKS_POLL_SECONDS": "0.01",
}


def subscribe(ds: Durascope, receiver: Receiver, path: str) -> str:
    """A webhook subscription to every status change, delivered to ``receiver`` at ``path``."""
    sub = wh.create_subscription(ds.db, wh.validate_spec(receiver.url(path)))
    receiver.secrets[path] = sub["secret"]
    return sub["id"]


def assert_webhooks_delivered(
    receiver: Receiver,
    path: str,
    arns: list[str],
    expected: tuple[str, ...] = ("RUNNING", "SUCCEEDED"),
    within: float = 30,
) -> None:
    """Every status change of every execution in ``arns`` arrived at ``path``, in order per
    execution (at least once: a change may arrive twice when its sender died after sending
    it, never out of order), each with one ``webhook-id`` however often it was sent."""

    def arrived(arn: str) -> list[str]:
        got = statuses(receiver.at(path), arn)
        return [s for i, s in enumerate(got) if i == 0 or s != got[i - 1]]

    wait_until(
        lambda: all(arrived(arn)[-1:] == [expected[-1]] for arn in arns),
        within,
        "not every final status change was delivered",
    )
    assert not receiver.bad
    assert one_id_per_event(receiver.seen)
    for arn in arns:
        assert arrived(arn) == list(expected), (arn, statuses(receiver.at(path), arn))
