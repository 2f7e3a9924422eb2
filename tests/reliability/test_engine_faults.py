"""SIGKILL of the engine (``durascope serve``) in the middle of its own work: while timers
fire, with two engines sharing one PostgreSQL database, and while it holds invocations
that a restarted ``serve`` on the same host must take back at once. Engines share the
work: an engine claims only the invocations it can start now.

After each fault: every execution ends as expected, histories are gap-free, projections
equal their rebuild from the log, no completed step ran twice, every status change was
delivered by webhook in order, and no process outlives the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.api import Durascope, wait_until
from tests.reliability.checks import (
    WEBHOOK_RETRY_ENV,
    assert_recovered,
    assert_webhooks_delivered,
    completed_steps,
    subscribe,
)
from tests.reliability.conftest import Served, wait_for_no_process
from tests.reliability.held import (
    STEPS,
    lambda_client,
    register,
    release_and_wait,
    start_held,
)
from tests.webhook_receiver import Receiver

LOST = "The invocation was lost"


def _count(ds: Durascope, event_type: str) -> int:
    with ds.db.read_raw() as raw:
        return int(raw.one("SELECT count(*) FROM events WHERE event_type = :t", {"t": event_type})[0])


def _invoke(url: str, ledger: Path, name: str, **payload: object) -> str:
    body = {"ledger": str(ledger), "name": name, "steps": STEPS, **payload}
    return lambda_client(url).invoke(
        FunctionName="ledgered", InvocationType="Event", Payload=json.dumps(body).encode(), DurableExecutionName=name
    )["DurableExecutionArn"]


def _engines(ds: Durascope, arn: str) -> list[str]:
    """The pid of the engine of each invocation of the execution, in order (the owner of
    its lease, ``host:pid:...``, as its InvocationStarted record in the log says)."""
    with ds.db.read_raw() as raw:
        rows = raw.all(
            "SELECT body FROM events WHERE execution_id = :e AND event_type = 'InvocationStarted' ORDER BY position",
            {"e": arn.rsplit("/", 1)[1]},
        )
    return [json.loads(body)["Engine"].split(":")[1] for (body,) in rows]


def _lost(ds: Durascope, arns: dict[str, str]) -> int:
    return sum(
        LOST in json.dumps(e)
        for arn in arns.values()
        for e in ds.history(arn)
        if e["EventType"] == "InvocationCompleted"
    )


def test_serve_sigkilled_while_timers_fire(
    database_url: str, control_only: Durascope, process_tag: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Thirty executions wait a second between their steps; serve is killed the moment the
    first of those timers fires. Its successor fires the rest, each exactly once."""
    register(control_only, process_tag)
    subscribe(control_only, receiver, "/timers")
    env = {**WEBHOOK_RETRY_ENV, "DURASCOPE_LEASE_SECONDS": "1"}
    first = Served(database_url, process_tag, tmp_path / "serve.log", "--invoker", "in-process", **env)
    names = [f"t{i}" for i in range(30)]
    try:
        arns = {n: _invoke(first.url, tmp_path, n, wait_after=0, wait_seconds=1) for n in names}
        wait_until(lambda: _count(control_only, "WaitSucceeded") > 0, 60, f"no timer fired: {first.tail()}")
    finally:
        first.kill()
    fired = _count(control_only, "WaitSucceeded")
    before = completed_steps(control_only, arns)
    second = Served(database_url, process_tag, tmp_path / "serve.log", "--invoker", "in-process", **env)
    try:
        for arn in arns.values():
            control_only.wait(arn, 60)
        assert_webhooks_delivered(receiver, "/timers", list(arns.values()))
    finally:
        second.stop()
    assert fired < len(names), "every timer had fired before the kill: it hit no firing"
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    for arn in arns.values():
        assert [e["EventType"] for e in control_only.history(arn)].count("WaitSucceeded") == 1
    wait_for_no_process(process_tag, 10, "after serve stopped")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_engines_on_postgresql_one_sigkilled(
    database_url: str, control_only: Durascope, process_tag: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Four executions held mid-step, two on each engine (two runtimes each); one engine is
    SIGKILLed. The other finishes all four once the dead one's leases run out."""
    register(control_only, process_tag)
    subscribe(control_only, receiver, "/two")
    env = {**WEBHOOK_RETRY_ENV, "DURASCOPE_LEASE_SECONDS": "2", "DURASCOPE_WORKER_CONCURRENCY": "2"}
    a = Served(database_url, process_tag, tmp_path / "a.log", **env)
    b = Served(database_url, process_tag, tmp_path / "b.log", **env)
    try:
        arns = start_held(a.url, tmp_path, ["a1", "a2"])
        arns |= start_held(b.url, tmp_path, ["b1", "b2"])
        before = completed_steps(control_only, arns)
        on_a = [n for n in arns if _engines(control_only, arns[n]) == [str(a.proc.pid)]]
        assert len(on_a) == 2, {n: _engines(control_only, arn) for n, arn in arns.items()}
        a.kill()
        for name in on_a:
            (tmp_path / f"{name}.holding").unlink()
        release_and_wait(control_only, tmp_path, arns)
        assert_webhooks_delivered(receiver, "/two", list(arns.values()))
    finally:
        a.stop()
        b.stop()
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    for name in on_a:
        assert _engines(control_only, arns[name])[-1] == str(b.proc.pid)
    assert _lost(control_only, arns) == 2, "what the killed engine ran, and nothing else, is lost"
    wait_for_no_process(process_tag, 10, "after both engines stopped")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_engines_claim_only_what_they_can_start(
    database_url: str, control_only: Durascope, process_tag: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Two engines with one runtime each; three executions invoked through A. A runs one, B
    runs another, the third waits unclaimed for the first free runtime. Killing A strands
    only the one it was running."""
    register(control_only, process_tag)
    subscribe(control_only, receiver, "/claims")
    env = {**WEBHOOK_RETRY_ENV, "DURASCOPE_LEASE_SECONDS": "2", "DURASCOPE_WORKER_CONCURRENCY": "1"}
    a = Served(database_url, process_tag, tmp_path / "a.log", **env)
    b = Served(database_url, process_tag, tmp_path / "b.log", **env)
    try:
        arns = {n: _invoke(a.url, tmp_path, n, hold=1) for n in ("x", "y", "z")}
        wait_until(
            lambda: sum((tmp_path / f"{n}.holding").exists() for n in arns) == 2,
            15,
            "two executions are not running at once on two engines",
        )
        held = [n for n in arns if (tmp_path / f"{n}.holding").exists()]
        (waiting,) = set(arns) - set(held)
        assert {_engines(control_only, arns[n])[0] for n in held} == {str(a.proc.pid), str(b.proc.pid)}
        assert _engines(control_only, arns[waiting]) == [], "claimed by an engine that could not start it"
        before = completed_steps(control_only, arns)
        a.kill()
        for name in held:
            (tmp_path / f"{name}.holding").unlink()
        release_and_wait(control_only, tmp_path, arns)
        assert_webhooks_delivered(receiver, "/claims", list(arns.values()))
    finally:
        a.stop()
        b.stop()
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    assert _lost(control_only, arns) == 1, "only what the killed engine was running is lost"
    wait_for_no_process(process_tag, 10, "after both engines stopped")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_restarted_serve_takes_back_its_own_invocations_at_once(
    database_url: str, control_only: Durascope, process_tag: str, receiver: Receiver, tmp_path: Path
) -> None:
    """The killed serve's leases last two minutes; its successor on the same host knows the
    owner is dead and does not wait them out (the test would time out first)."""
    register(control_only, process_tag)
    subscribe(control_only, receiver, "/restarted")
    env = {**WEBHOOK_RETRY_ENV, "DURASCOPE_LEASE_SECONDS": "120", "DURASCOPE_WORKER_CONCURRENCY": "2"}
    first = Served(database_url, process_tag, tmp_path / "serve.log", **env)
    try:
        arns = start_held(first.url, tmp_path, ["a", "b"])
        before = completed_steps(control_only, arns)
    finally:
        first.kill()
    wait_for_no_process(process_tag, 5, "runtimes outlived their SIGKILLed engine")
    for name in arns:
        (tmp_path / f"{name}.holding").unlink()
    second = Served(database_url, process_tag, tmp_path / "serve.log", **env)
    try:
        (tmp_path / "release").touch()
        for arn in arns.values():
            control_only.wait(arn, 20)
        assert_webhooks_delivered(receiver, "/restarted", list(arns.values()))
    finally:
        second.stop()
    assert_recovered(control_only, arns, tmp_path, STEPS, before)
    wait_for_no_process(process_tag, 10, "after serve stopped")
