"""Webhook delivery under faults: a receiver that is down, then answers 500, then 200; and a
SIGKILL of ``serve`` in the middle of a delivery.

After each fault: every status change was delivered, in order per execution, with the
same ``webhook-id`` on every attempt and redelivery of one change; the subscription is
still enabled; no process outlives the test.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from recorder.api import Durascope
from recorder.followers import webhooks as wh
from recorder.followers.dispatcher import Dispatcher
from recorder.followers.models import WebhookAttempt
from recorder.followers.webhooks import WebhookSettings
from tests.conftest import register
from tests.reliability.checks import (
    WEBHOOK_RETRY,
    WEBHOOK_RETRY_ENV,
    assert_projections_match_rebuild,
    assert_webhooks_delivered,
    gap_free,
    subscribe,
)
from tests.reliability.conftest import Served
from tests.webhook_receiver import Receiver


def _failed_attempts(ds: Durascope) -> int:
    with ds.db.read() as s:
        return s.execute(select(func.count()).where(WebhookAttempt.ok.is_(False))).scalar_one()


def test_receiver_down_then_500_then_200_loses_nothing_with_default_settings(
    database_url: str, receiver: Receiver
) -> None:
    """A receiver outage used to disable the subscription within seconds (one failure counted
    per claim, 20 by default); now nothing is disabled short of days of failure."""
    ws = WebhookSettings(**WEBHOOK_RETRY)
    assert ws.disable_after_seconds >= 86_400 and ws.max_failures == 20  # the defaults
    with Durascope.open(database_url) as ds:
        register(ds, "add-one", "th_basic.add_one")
        sub_id = subscribe(ds, receiver, "/outage")
        receiver.down()
        disp = Dispatcher(ds.db, ds.settings, ws)
        disp.start()
        try:
            arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(25)]
            for arn in arns:
                ds.wait(arn, 60)
            ds.wait_for(lambda: _failed_attempts(ds) >= 200, 60, "no failed attempts while the receiver is down")
            receiver.status = 500
            receiver.up()
            ds.wait_for(lambda: sum(s.answered == 500 for s in receiver.seen) >= 50, 60, "no 500 answers")
            down = wh.get_subscription(ds.db, sub_id)
            assert down["enabled"] and down["consecutiveFailures"] > 20 and down["failingSinceMs"]
            receiver.status = 200
            ds.wait_for(lambda: len(receiver.at("/outage")) >= 50, 60, "not delivered after the receiver recovered")
        finally:
            disp.stop()
        assert_webhooks_delivered(receiver, "/outage", arns)
        after = wh.get_subscription(ds.db, sub_id)
        assert after["enabled"] and after["consecutiveFailures"] == 0 and after["failingSinceMs"] is None
        assert after["deliveries"] == {"pending": 0, "succeeded": 50}


def test_serve_killed_during_a_delivery_redelivers_it_and_its_successor_takes_over_at_once(
    database_url: str, receiver: Receiver, tmp_path: Path, process_tag: str
) -> None:
    """SIGKILL of ``serve`` while a delivery is in flight. The restarted ``serve`` sends it
    again with the same webhook-id, at once: the dead process's 120 s dispatcher lease is
    not waited out (the test would time out first)."""
    env = {**WEBHOOK_RETRY_ENV, "DURASCOPE_WEBHOOKS_LEASE_SECONDS": "120", "DURASCOPE_LEASE_SECONDS": "2"}
    log = tmp_path / "serve.log"
    with Durascope.open(database_url, run_engine=False) as ds:
        register(ds, "add-one", "th_basic.add_one")
        subscribe(ds, receiver, "/killed")
        receiver.holding = True
        first = Served(database_url, process_tag, log, "--invoker", "in-process", **env)
        try:
            arns = [ds.start("add-one", json.dumps({"a": i})) for i in range(5)]
            ds.wait_for(lambda: receiver.held.is_set(), 60, f"no delivery reached the receiver: {first.tail()}")
        finally:
            first.kill()
        receiver.release()
        ds.wait_for(lambda: receiver.seen, 30, "the held request was not recorded")
        held = receiver.seen[0]
        second = Served(database_url, process_tag, log, "--invoker", "in-process", **env)
        try:
            ds.wait_for(
                lambda: len({i for i, _ in receiver.at("/killed")}) >= 10,
                60,
                f"not delivered after the restart: {second.tail()}",
            )
            for arn in arns:
                assert ds.wait(arn, 60).status == "SUCCEEDED"
        finally:
            second.stop()
        assert all(gap_free(ds.history(arn)) for arn in arns)
        assert_projections_match_rebuild(ds)
    assert held.event is not None
    # The change that was in flight when the sender died arrived again, with its webhook-id.
    assert held.webhook_id in {i for i, _ in receiver.at("/killed")}
    assert_webhooks_delivered(receiver, "/killed", arns)
