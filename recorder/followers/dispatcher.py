"""The webhook dispatcher: a follower per subscription, signed sends, durable retries.

The work on the database is in ``outbox`` (fan-out, claim, record, prune) and the HTTP in
``sender``; this module runs them and keeps the lease. In the background it is a pipeline
of three kinds of threads, so the senders never wait for the database and the database
never waits for a slow send:

1. **Fan-out** (its own thread). New status changes after each subscription's stored
   position become pending ``webhook_deliveries`` rows, and the position moves, in one
   transaction. (Fanning out 1,000 changes takes a few hundred ms on a busy machine;
   done on the loop's thread, it left the senders idle meanwhile.)
2. **Claim** (the fan-out thread right after a fan-out, and the loop). While fewer than
   ``window`` deliveries are in flight, claim due rows that are the earliest pending one
   of their (subscription, execution) and are not in flight, and queue them for the
   ``concurrency`` sending threads. A later event of an execution is claimed only after
   the earlier one was *recorded* as succeeded, so order per subscription and execution
   holds while different executions go in parallel.
3. **Send** (``lanes``: a fast lane, and a slow lane for subscriptions whose attempts take
   long, so they cannot stall the others). Signed per Standard Webhooks; ``webhook-id`` is
   the delivery's stable id, so every retry and redelivery carries the same one.
4. **Record** (the loop). Outcomes are gathered for a few milliseconds and written in one
   transaction: the attempt log, each delivery succeeded or rescheduled (exponential
   backoff with jitter, due time in the database), since when each subscription has been
   failing, and the disable after a long stretch of failure.

A crash between 3 and 4 sends the event again later with the same webhook-id
(at-least-once). APScheduler only wakes the loop: at the next due retry, on a periodic
sweep and for the periodic prune (``outbox.prune``, past the log retention). The
fan-out thread looks at the log tail every ``poll_seconds``. Only one dispatcher per
database works at a time (a lease in ``followers``); a dispatcher restarted on the same
host takes the lease of its dead predecessor at once (``recorder.owners``) instead of
waiting for it to expire. ``run_once`` is one synchronous pass of the same steps (tests,
tools).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import insert, select, update
from standardwebhooks import Webhook

from recorder.config import Settings
from recorder.followers import outbox
from recorder.followers.lanes import Lanes
from recorder.followers.models import Follower
from recorder.followers.outbox import Due, Outcome, backoff_ms, webhook_id
from recorder.followers.sender import EXCERPT_CHARS, Sender
from recorder.followers.webhooks import WebhookSettings, now_ms
from recorder.owners import known_dead, owner_id
from recorder.store.availability import report_failure
from recorder.store.db import Database
from recorder.wakeup import Wakeup

log = logging.getLogger("durascope.webhooks")
logging.getLogger("apscheduler").setLevel(logging.WARNING)

LEASE_NAME = "webhook-dispatcher"
# How long outcomes are gathered into one record transaction once the first is in: long
# enough for a batch (one commit per delivery would cap PostgreSQL at a few hundred per
# second), short next to the wait of a later event of the same execution.
GATHER_SECONDS = 0.005
PRUNE_BATCH = 1000
_WAKE = None  # on the results queue: look for work now
# Statistics are refreshed after this many fanned-out rows, at most once a minute.
ANALYZE_AFTER_ROWS = 2000
ANALYZE_EVERY_SECONDS = 60.0

__all__ = ["Dispatcher", "LEASE_NAME", "backoff_ms", "run_dispatcher", "webhook_id"]


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        ws: WebhookSettings | None = None,
        owner: str | None = None,
        fanout_batch: int = 1000,
        send_batch: int = 256,
    ) -> None:
        self.db = db
        self.settings = settings
        self.ws = ws or WebhookSettings.from_env()
        self.owner = owner or owner_id()
        self.fanout_batch = fanout_batch
        self.send_batch = send_batch
        # In flight at most: a claim of a full batch waits until a batch has been recorded,
        # so the senders have a batch queued while the next one is claimed.
        self.window = 2 * send_batch
        self.sender = Sender(self.ws)
        self.lanes = Lanes(self._send_one, self.ws.concurrency, self.ws.slow_seconds)
        # Claimed and not yet recorded; only changed under _claim_lock.
        self._inflight: dict[int, Due] = {}
        self._claim_lock = threading.Lock()
        self._results: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._signers: dict[tuple[str, str], Webhook] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._fan_thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._lease_until = 0
        self._wakeup: Wakeup | None = None
        self._rng = random.Random()
        # Subscriptions this dispatcher knows not to be failing: a success needs no
        # statement for them.
        self._clean: set[str] = set()
        self._prune_due = True
        self._fanned = 0  # rows fanned out since the statistics were last refreshed
        self._analyzed_at = -ANALYZE_EVERY_SECONDS

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.start()
        self._wakeup = Wakeup(self._scheduler, self.wake, "due")
        self._scheduler.add_job(
            self.wake,
            "interval",
            seconds=max(self.ws.lease_seconds / 3, 0.5),
            id="sweep",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._ask_prune,
            "interval",
            seconds=max(self.ws.prune_interval_seconds, 0.1),
            id="prune",
            max_instances=1,
            coalesce=True,
        )
        self._thread = threading.Thread(target=self._loop, name="durascope-webhooks", daemon=True)
        self._fan_thread = threading.Thread(target=self._fanning, name="durascope-webhooks-fan-out", daemon=True)
        self._thread.start()
        self._fan_thread.start()

    def stop(self) -> None:
        """Stop claiming, let what is in flight finish and be recorded, release the lease."""
        self._stopping.set()
        self.wake()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001 - stopping: a scheduler that is already down is fine
                pass
        for t in (self._fan_thread, self._thread):
            if t is not None:
                t.join(timeout=30)
        self.lanes.stop()
        self.sender.close()
        self._release_lease()

    def wake(self) -> None:
        # The loop blocks on one queue only, for outcomes and wake-ups alike, so a wake-up
        # also cuts short a wait for outcomes (new work is claimed while sends run).
        self._results.put(_WAKE)

    def _ask_prune(self) -> None:
        self._prune_due = True
        self.wake()

    def _loop(self) -> None:
        # On stop: run until the fan-out thread (which claims too) has ended and everything
        # claimed has been recorded.
        while not (
            self._stopping.is_set()
            and not self._inflight
            and not (self._fan_thread is not None and self._fan_thread.is_alive())
        ):
            try:
                self._step()
            except Exception:  # noqa: BLE001 - keep following; the next pass retries
                report_failure(log, "webhook dispatcher pass failed")
                self._stopping.wait(1.0)

    def _fanning(self) -> None:
        active_until = 0.0
        while not self._stopping.is_set():
            n = 0
            try:
                if now_ms() < self._lease_until:  # the loop holds the lease
                    n = self.fan_out()
                    if n:
                        # Claim what just became due from here: a hop to the loop's thread
                        # costs a GIL hand-over (~5 ms of the live latency on a busy process).
                        self._top_up()
            except Exception:  # noqa: BLE001 - keep following; the next turn retries
                report_failure(log, "webhook fan-out failed")
                self._stopping.wait(1.0)
            if n:
                active_until = time.monotonic() + 1.0
            else:
                # While changes keep coming, look at the log tail 4x as often: the wait is
                # most of the latency from commit to delivery.
                busy = time.monotonic() < active_until
                self._stopping.wait(self.ws.poll_seconds / 4 if busy else self.ws.poll_seconds)

    def _top_up(self) -> None:
        """Claim due rows for the senders while fewer than ``window`` are in flight. Both the
        loop and the fan-out thread call it; the lock makes claim-and-mark-in-flight one step."""
        with self._claim_lock:
            room = self.window - len(self._inflight)
            if self._stopping.is_set() or (room < self.send_batch and self._inflight):
                return
            for row in self._claim(min(room, self.send_batch), list(self._inflight)):
                if self.lanes.put(row, self._results):
                    self._inflight[row.id] = row

    def _step(self) -> None:
        """One turn of the loop: top up the senders, then wait for outcomes or a wake-up
        (at most ``poll_seconds``) and record what came back."""
        self.lanes.watch()
        if not self._stopping.is_set() and self._hold_lease():
            self._prune_some()
            self._top_up()
        got = self._gather(len(self._inflight))
        try:
            if got:
                self._record(got)
        finally:
            with self._claim_lock:
                for o in got:
                    self._inflight.pop(o.delivery_id, None)

    def _gather(self, inflight: int) -> list[Outcome]:
        """Outcomes: wait up to ``poll_seconds`` for the first item (an outcome or a wake-up),
        then up to ``GATHER_SECONDS`` for more outcomes, so a batch is one transaction."""
        got: list[Outcome] = []
        try:
            item = self._results.get(timeout=self.ws.poll_seconds)
        except queue.Empty:
            return got
        if item is _WAKE:
            return got
        got.append(item)
        deadline = time.monotonic() + GATHER_SECONDS
        want = min(inflight, self.send_batch)
        while len(got) < want:
            left = deadline - time.monotonic()
            try:
                item = self._results.get(timeout=left) if left > 0 else self._results.get_nowait()
            except queue.Empty:
                break
            if item is not _WAKE:
                got.append(item)
        return got

    def _wake_at(self, due_ms: int) -> None:
        """APScheduler wakes the loop when the next retry is due."""
        if self._wakeup is not None:
            self._wakeup.at(due_ms)

    # --- lease ---------------------------------------------------------------------------------

    def _hold_lease(self) -> bool:
        now = now_ms()
        if now < self._lease_until - int(self.ws.lease_seconds * 1000 * 2 / 3):
            return True
        until = now + int(self.ws.lease_seconds * 1000)
        f = Follower.__table__
        with self.db.write() as conn:
            row = conn.execute(
                select(f.c.owner, f.c.lease_expires_ms).where(f.c.name == LEASE_NAME).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    insert(f),
                    {
                        "name": LEASE_NAME,
                        "position": 0,
                        "owner": self.owner,
                        "lease_expires_ms": until,
                        "updated_ms": now,
                    },
                )
            elif (
                row.owner == self.owner
                or row.owner is None
                or (row.lease_expires_ms or 0) < now
                or known_dead(row.owner)
            ):
                if row.owner not in (self.owner, None) and (row.lease_expires_ms or 0) >= now:
                    log.info("webhook dispatcher lease taken from %s: a process of this host that is gone", row.owner)
                conn.execute(
                    update(f)
                    .where(f.c.name == LEASE_NAME)
                    .values(owner=self.owner, lease_expires_ms=until, updated_ms=now)
                )
            else:
                self._lease_until = 0
                return False
        if not self._lease_until:
            self._clean.clear()  # another dispatcher may have counted failures meanwhile
        self._lease_until = until
        return True

    def _release_lease(self) -> None:
        if not self._lease_until:
            return
        try:
            f = Follower.__table__
            with self.db.write() as conn:
                conn.execute(
                    update(f)
                    .where(f.c.name == LEASE_NAME, f.c.owner == self.owner)
                    .values(owner=None, lease_expires_ms=None, updated_ms=now_ms())
                )
        except Exception:  # noqa: BLE001 - stopping: an unreleased lease expires by itself
            pass
        self._lease_until = 0

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Fan out new status changes, send what is due, record it. True when there was work."""
        if not self._hold_lease():
            return False
        self._prune_some()
        fanned = self.fan_out()
        sent = self.send_due()
        return bool(fanned or sent)

    def fan_out(self) -> int:
        n = outbox.fan_out(self.db, self.settings, self.fanout_batch)
        self._fanned += n
        if self._fanned >= ANALYZE_AFTER_ROWS and time.monotonic() - self._analyzed_at >= ANALYZE_EVERY_SECONDS:
            outbox.refresh_statistics(self.db)
            self._fanned, self._analyzed_at = 0, time.monotonic()
        return n

    def send_due(self) -> int:
        results: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        queued = sum(self.lanes.put(row, results) for row in self._claim(self.send_batch, ()))
        got = [item for item in (results.get() for _ in range(queued)) if item is not None]
        if got:
            self._record(got)
        return len(got)

    def prune(self) -> int:
        """Delete one batch of deliveries past the retention; 0 when retention is off."""
        if self.ws.log_retention_days <= 0:
            return 0
        return outbox.prune(self.db, now_ms() - int(self.ws.log_retention_days * 86_400_000), PRUNE_BATCH)

    def _prune_some(self) -> None:
        # One batch per turn, so a large first prune never holds deliveries up for long.
        if self._prune_due and self.prune() < PRUNE_BATCH:
            self._prune_due = False

    def _claim(self, limit: int, exclude: Collection[int]) -> list[Due]:
        due = outbox.claim(self.db, now_ms(), limit, exclude, self.lanes.saturated())
        if not due and not exclude:
            nxt = outbox.next_due_ms(self.db)
            if nxt is not None:
                self._wake_at(nxt)
        return due

    def _record(self, got: Sequence[Outcome]) -> None:
        failed = {o.subscription_id for o in got if not o.ok}
        clean = outbox.record(self.db, got, self.ws, self._rng, self._clean)
        self._clean = (self._clean - failed) | clean

    # --- sending --------------------------------------------------------------------------------

    def _signer(self, sub_id: str, secret: str) -> Webhook:
        key = (sub_id, secret)
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = Webhook(secret)
        return signer

    def _send_one(self, row: Due) -> Outcome:
        ts = time.time()
        t0 = time.perf_counter()
        try:
            stamp = datetime.fromtimestamp(ts, UTC)
            headers = {
                "webhook-id": row.webhook_id,
                "webhook-timestamp": str(int(ts)),
                "webhook-signature": self._signer(row.subscription_id, row.secret).sign(
                    row.webhook_id, stamp, row.body
                ),
            }
            res = self.sender.post(row.url, row.body.encode(), headers)
            # What a private target answers stays out of the log (``addresses.is_private``).
            code, excerpt, error = res.status, None if res.private else res.excerpt, res.error
        except Exception as exc:
            log.exception("webhook send failed")
            code, excerpt, error = None, None, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
        latency = int((time.perf_counter() - t0) * 1000)
        if self.ws.crash_after_send:
            os._exit(9)  # TEST HOOK (DURASCOPE_TEST_CRASH_AFTER_SEND): sent, not recorded
        ok = code is not None and 200 <= code < 300
        if code is not None and not ok and error is None:
            error = f"HTTP {code}"
        return Outcome(
            row.id,
            row.subscription_id,
            row.execution_id,
            row.attempts + 1,
            int(ts * 1000),
            ok,
            code,
            latency,
            error,
            excerpt,
            row.manual,
        )


def run_dispatcher(database_url: str | None = None, stop: threading.Event | None = None) -> None:
    """Run a dispatcher in the foreground until ``stop`` is set (``durascope webhooks dispatch``)."""
    settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
    db = Database(settings.database_url)
    db.check_schema(settings.auto_upgrade)
    disp = Dispatcher(db, settings)
    disp.start()
    try:
        (stop or threading.Event()).wait()
    finally:
        disp.stop()
        db.dispose()
