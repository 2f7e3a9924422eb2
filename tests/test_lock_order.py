"""Lock order on PostgreSQL: row locks (a chained child before its parent), then the one
append lock. A child's close completes its parent's op; were the parent's row locked only
then, the child would wait for it while holding the append lock, and the parent's own
transaction (row first, append lock second) would deadlock with it."""

from __future__ import annotations

import threading

from recorder.api import Durascope
from recorder.store.log import APPEND_LOCK_KEY
from tests.conftest import pg_connect, register
from tests.test_engine import suspended


def test_a_child_waits_for_its_parent_before_it_takes_the_append_lock(pg_url: str) -> None:
    ds = Durascope.open(pg_url)
    holder = pg_connect(pg_url)
    probe = pg_connect(pg_url)
    try:
        register(ds, "approval", "th_basic:approval")
        register(ds, "parent", "th_basic:calls_child")
        parent = ds.start("parent", '{"target": "approval"}')
        child = ds.wait_for(
            lambda: next(
                (
                    e["ChainedInvokeStartedDetails"]["DurableExecutionArn"]
                    for e in ds.history(parent)
                    if e["EventType"] == "ChainedInvokeStarted"
                ),
                None,
            ),
            15,
            "no chained invoke",
        )
        suspended(ds, child)
        suspended(ds, parent)
        parent_id = parent.rsplit("/", 1)[-1]
        # Another transaction holds the parent's row, as a parent's checkpoint would.
        holder.execute("SELECT 1 FROM executions WHERE execution_id = %s FOR UPDATE", (parent_id,))
        stopping = threading.Thread(target=ds.stop, args=(child,), daemon=True)
        stopping.start()

        def blocked() -> bool:
            with probe.transaction():
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
            return bool(row and row[0] >= 1)

        ds.wait_for(blocked, 15, "the child's stop never waited for the parent's row")
        # While it waits, it must not hold the append lock.
        with probe.transaction():
            got = probe.execute("SELECT pg_try_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,)).fetchone()
        assert got == (True,)
        holder.rollback()
        stopping.join(15)
        assert not stopping.is_alive()
        assert ds.describe(child).status == "STOPPED"
        done = ds.wait(parent, 30)
        assert done.status == "FAILED"
        assert "ChainedInvokeStopped" in [e["EventType"] for e in ds.history(parent)]
    finally:
        holder.close()
        probe.close()
        ds.close()
