"""The webhook dispatcher: a follower per subscription, signed sends, durable retries.

One pass (``run_once``):

1. **Fan-out.** For every enabled subscription, read the status changes after its
   stored position (``followers`` row ``webhook:<id>``), apply its filters and insert
   one ``webhook_deliveries`` row per match, due now, then store the new position
   -- all in one transaction, so a crash either keeps both or neither (invariant 5).
2. **Send.** Pick due pending deliveries whose subscription is enabled and that have
   no earlier pending delivery for the same (subscription, execution): a later
   event of an execution is never sent before an earlier one succeeded. Send them in
   parallel, signed per Standard Webhooks (``webhook-id`` is the delivery's stable
   id, so redeliveries carry the same id).
3. **Record.** One transaction: an attempt row per send (the delivery log), the
   delivery succeeded or rescheduled (exponential backoff with jitter, due time in
   the database), and a subscription that failed ``max_failures`` rounds in a row
   is disabled with the reason.

A crash between 2 and 3 sends the event again later with the same webhook-id
(at-least-once). APScheduler only wakes the loop: at the next due retry and on a
periodic sweep; the loop also looks at the log tail every ``poll_seconds``.
Only one dispatcher per database works at a time (a lease in ``followers``).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, func, insert, select, update
from standardwebhooks import Webhook

from recorder.config import Settings
from recorder.followers.models import (Follower, WebhookAttempt, WebhookDelivery, WebhookFunctionStatus,
                                       WebhookSubscription)
from recorder.followers.status import Filter, StatusChange, head_position, read_status_changes
from recorder.followers.webhooks import WebhookSettings, follower_name, now_ms, refused_address
from recorder.store.db import Database

log = logging.getLogger("durascope.webhooks")
logging.getLogger("apscheduler").setLevel(logging.WARNING)

LEASE_NAME = "webhook-dispatcher"
_WEBHOOK_ID_NS = uuid.UUID("2b0d5c8e-9f7a-4c1e-8d3b-77656268686b")
EXCERPT_CHARS = 512


def webhook_id(subscription_id: str, execution_id: str, position: int) -> str:
    """Stable per (event, subscription): every attempt and redelivery carries it."""
    return "msg_" + uuid.uuid5(_WEBHOOK_ID_NS, f"{subscription_id}/{execution_id}/{position}").hex


def backoff_ms(attempts: int, ws: WebhookSettings, rng: random.Random | None = None) -> int:
    """Delay after the ``attempts``-th failure: base * 2^(n-1), capped, times 50-100 % jitter."""
    delay = min(ws.retry_max_seconds, ws.retry_base_seconds * (2 ** min(max(attempts - 1, 0), 30)))
    return int(delay * (rng or random).uniform(0.5, 1.0) * 1000)


# --- HTTP -----------------------------------------------------------------------------------


class RefusedAddress(OSError):
    pass


def _check_peer(sock: socket.socket, allow_private: bool) -> None:
    if allow_private:
        return
    why = refused_address(str(sock.getpeername()[0]))
    if why:
        sock.close()
        raise RefusedAddress(f"refused: {why}; set DURASCOPE_WEBHOOKS_ALLOW_PRIVATE=1 to allow it")


class _HTTP(http.client.HTTPConnection):
    allow_private = False

    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock, self.allow_private)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPS(http.client.HTTPSConnection):
    allow_private = False

    def connect(self) -> None:
        # Check the TCP peer before the TLS handshake (HTTPSConnection.connect wraps it).
        http.client.HTTPConnection.connect(self)
        _check_peer(self.sock, self.allow_private)
        server_hostname = self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=server_hostname)  # type: ignore[attr-defined]


@dataclass
class Outcome:
    delivery_id: int
    subscription_id: str
    attempt: int
    ts_ms: int
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None
    manual: bool


class Sender:
    """Keep-alive connections per thread and origin; the peer address is checked on connect."""

    def __init__(self, ws: WebhookSettings) -> None:
        self.ws = ws
        self._local = threading.local()
        self._ssl = ssl.create_default_context()

    def _conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (scheme, host, port)
        conn = conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = _HTTPS(host, port, timeout=self.ws.timeout_seconds, context=self._ssl)
            else:
                conn = _HTTP(host, port, timeout=self.ws.timeout_seconds)
            conn.allow_private = self.ws.allow_private  # type: ignore[attr-defined]
            conns[key] = conn
        return conn

    def _drop(self, key: tuple[str, str, int]) -> None:
        conn = self._local.conns.pop(key, None)
        if conn is not None:
            conn.close()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None, str | None]:
        """(status code, response excerpt, error)."""
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (scheme, host, port)
        hdrs = {"Content-Type": "application/json", "User-Agent": "durascope-webhooks/1", **headers}
        if parts.username or parts.password:
            import base64
            userinfo = f"{parts.username or ''}:{parts.password or ''}".encode()
            hdrs["Authorization"] = "Basic " + base64.b64encode(userinfo).decode()
        for retry in (0, 1):
            conn = self._conn(scheme, host, port)
            reused = conn.sock is not None
            try:
                conn.request("POST", path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read(EXCERPT_CHARS * 4)
                if not resp.isclosed():
                    resp.read()  # drain so the connection can be reused
                if resp.will_close:
                    self._drop(key)
                return resp.status, data.decode("utf-8", "replace")[:EXCERPT_CHARS], None
            except RefusedAddress as exc:
                self._drop(key)
                return None, None, str(exc)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                # A kept-alive connection the server closed: try once on a fresh one.
                if reused and retry == 0 and isinstance(exc, (http.client.RemoteDisconnected,
                                                              ConnectionResetError, BrokenPipeError)):
                    continue
                return None, None, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
        return None, None, "unreachable"

    def close(self) -> None:
        conns = getattr(self._local, "conns", None) or {}
        for conn in conns.values():
            conn.close()
        conns.clear()


# --- the dispatcher ----------------------------------------------------------------------------


@dataclass
class _Sub:
    id: str
    url: str
    secret: str
    statuses: frozenset[str] | None
    function: str | None
    name_prefix: str | None
    on_change_only: bool
    max_failures: int
    consecutive_failures: int


def _sub_from_row(r: Any) -> _Sub:
    return _Sub(r.id, r.url, r.secret, frozenset(json.loads(r.statuses_json)) if r.statuses_json else None,
                r.function_filter, r.name_prefix, bool(r.on_change_only), r.max_failures, r.consecutive_failures)


class Dispatcher:
    def __init__(self, db: Database, settings: Settings, ws: WebhookSettings | None = None,
                 owner: str | None = None, fanout_batch: int = 1000, send_batch: int = 256) -> None:
        self.db = db
        self.settings = settings
        self.ws = ws or WebhookSettings.from_env()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.fanout_batch = fanout_batch
        self.send_batch = send_batch
        self.sender = Sender(self.ws)
        self._pool = ThreadPoolExecutor(self.ws.concurrency, thread_name_prefix="durascope-webhook")
        self._signers: dict[tuple[str, str], Webhook] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._lease_until = 0
        self._next_due: int | None = None
        self._rng = random.Random()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.start()
        self._scheduler.add_job(self.wake, "interval", seconds=max(self.ws.lease_seconds / 3, 0.5), id="sweep",
                                max_instances=1, coalesce=True)
        self._thread = threading.Thread(target=self._loop, name="durascope-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001
                pass
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)
        self.sender.close()
        self._release_lease()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - keep following; the next pass retries
                log.exception("webhook dispatcher pass failed")
                busy = False
                self._stopping.wait(1.0)
            if not busy:
                self._wake.wait(self.ws.poll_seconds)
                self._wake.clear()

    def _wake_at(self, due_ms: int) -> None:
        """APScheduler wakes the loop when the next retry is due."""
        if self._scheduler is None or (self._next_due is not None and now_ms() < self._next_due <= due_ms):
            return
        self._next_due = due_ms
        try:
            self._scheduler.add_job(self.wake, "date", run_date=datetime.fromtimestamp(due_ms / 1000, UTC),
                                    id="due", replace_existing=True, misfire_grace_time=None)
        except Exception:  # noqa: BLE001 - scheduler shut down
            pass

    # --- lease ---------------------------------------------------------------------------------

    def _hold_lease(self) -> bool:
        now = now_ms()
        if now < self._lease_until - int(self.ws.lease_seconds * 1000 * 2 / 3):
            return True
        until = now + int(self.ws.lease_seconds * 1000)
        f = Follower.__table__
        with self.db.write() as conn:
            row = conn.execute(select(f.c.owner, f.c.lease_expires_ms).where(f.c.name == LEASE_NAME)
                               .with_for_update()).first()
            if row is None:
                conn.execute(insert(f), {"name": LEASE_NAME, "position": 0, "owner": self.owner,
                                         "lease_expires_ms": until, "updated_ms": now})
            elif row.owner == self.owner or row.owner is None or (row.lease_expires_ms or 0) < now:
                conn.execute(update(f).where(f.c.name == LEASE_NAME)
                             .values(owner=self.owner, lease_expires_ms=until, updated_ms=now))
            else:
                self._lease_until = 0
                return False
        self._lease_until = until
        return True

    def _release_lease(self) -> None:
        if not self._lease_until:
            return
        try:
            f = Follower.__table__
            with self.db.write() as conn:
                conn.execute(update(f).where(f.c.name == LEASE_NAME, f.c.owner == self.owner)
                             .values(owner=None, lease_expires_ms=None, updated_ms=now_ms()))
        except Exception:  # noqa: BLE001
            pass
        self._lease_until = 0

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Fan out new status changes and send what is due. True when there was work."""
        if not self._hold_lease():
            return False
        fanned = self.fan_out()
        sent = self.send_due()
        return bool(fanned or sent)

    def fan_out(self) -> int:
        w, f = WebhookSubscription.__table__, Follower.__table__
        with self.db.read() as s:
            head = head_position(s)
            rows = s.execute(select(w, f.c.position).join(f, f.c.name == ("webhook:" + w.c.id))
                             .where(w.c.enabled.is_(True), f.c.position < head)).all()
        total = 0
        for r in rows:
            total += self._fan_out_one(_sub_from_row(r))
        return total

    def _fan_out_one(self, sub: _Sub) -> int:
        f = Follower.__table__
        now = now_ms()
        with self.db.write() as conn:
            pos = conn.execute(select(f.c.position).where(f.c.name == follower_name(sub.id))).scalar()
            enabled = conn.execute(select(WebhookSubscription.enabled).where(WebhookSubscription.id == sub.id)).scalar()
            if pos is None or not enabled:
                return 0
            changes, cursor = read_status_changes(conn, pos, self.fanout_batch)
            flt = Filter(None, sub.function, sub.name_prefix)
            rows = []
            for ch in changes:
                if not self._wanted(conn, sub, flt, ch):
                    continue
                body = json.dumps(ch.to_event(self.settings), separators=(",", ":"))
                rows.append({"subscription_id": sub.id, "position": ch.position, "execution_id": ch.execution_id,
                             "status": ch.status, "webhook_id": webhook_id(sub.id, ch.execution_id, ch.position),
                             "state": "pending", "body": body, "manual": False, "attempts": 0,
                             "next_attempt_ms": now, "created_ms": now, "commit_ms": ch.ts_ms,
                             "delivered_ms": None, "last_status_code": None, "last_error": None})
            if rows:
                conn.execute(insert(WebhookDelivery), rows)
            conn.execute(update(f).where(f.c.name == follower_name(sub.id)).values(position=cursor, updated_ms=now))
        return len(rows) or (1 if cursor > pos and len(changes) >= self.fanout_batch else 0)

    def _wanted(self, conn: Connection, sub: _Sub, flt: Filter, ch: StatusChange) -> bool:
        if not flt.matches_function(ch, self.settings):
            return False
        if sub.on_change_only:
            if not ch.terminal:
                return False
            t = WebhookFunctionStatus.__table__
            prev = conn.execute(select(t.c.status).where(t.c.subscription_id == sub.id,
                                                         t.c.function_name == ch.function_name)).scalar()
            if prev is None:
                conn.execute(insert(t), {"subscription_id": sub.id, "function_name": ch.function_name,
                                         "status": ch.status})
            elif prev != ch.status:
                conn.execute(update(t).where(t.c.subscription_id == sub.id, t.c.function_name == ch.function_name)
                             .values(status=ch.status))
            if prev == ch.status:
                return False
        if sub.statuses is not None and ch.status not in sub.statuses:
            return False
        if sub.name_prefix and not ch.name.startswith(sub.name_prefix):
            return False
        return True

    def _due(self, now: int) -> list[Any]:
        """Due deliveries that are the earliest pending one of their (subscription, execution).

        Two index-driven queries bounded by the batch size (no correlated subquery, whose
        plan degrades on a large, freshly filled table): due candidates by due time, then
        the earliest pending position of each candidate's execution."""
        d, w = WebhookDelivery.__table__, WebhookSubscription.__table__
        q = (select(d.c.id, d.c.subscription_id, d.c.execution_id, d.c.position, d.c.webhook_id, d.c.body,
                    d.c.attempts, d.c.manual, w.c.url, w.c.secret)
             .join(w, w.c.id == d.c.subscription_id)
             .where(d.c.state == "pending", d.c.next_attempt_ms <= now, w.c.enabled.is_(True))
             .order_by(d.c.next_attempt_ms, d.c.position).limit(self.send_batch * 2))
        with self.db.read() as s:
            rows = list(s.execute(q).all())
            if not rows:
                return []
            first: dict[tuple[str, str], int] = {}
            pairs = {(r.subscription_id, r.execution_id) for r in rows}
            exec_ids = sorted({e for _, e in pairs})
            subs = sorted({sid for sid, _ in pairs})
            for i in range(0, len(exec_ids), 500):
                for r in s.execute(select(d.c.subscription_id, d.c.execution_id, func.min(d.c.position))
                                   .where(d.c.state == "pending", d.c.execution_id.in_(exec_ids[i:i + 500]),
                                          d.c.subscription_id.in_(subs))
                                   .group_by(d.c.subscription_id, d.c.execution_id)).all():
                    first[(r[0], r[1])] = r[2]
        out = [r for r in rows if first.get((r.subscription_id, r.execution_id)) == r.position]
        return out[:self.send_batch]

    def _next_due_ms(self) -> int | None:
        d, w = WebhookDelivery.__table__, WebhookSubscription.__table__
        with self.db.read() as s:
            return s.execute(select(d.c.next_attempt_ms).join(w, w.c.id == d.c.subscription_id)
                             .where(d.c.state == "pending", w.c.enabled.is_(True))
                             .order_by(d.c.next_attempt_ms).limit(1)).scalar()

    def _signer(self, sub_id: str, secret: str) -> Webhook:
        key = (sub_id, secret)
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = Webhook(secret)
        return signer

    def _send_one(self, row: Any) -> Outcome:
        ts = time.time()
        stamp = datetime.fromtimestamp(ts, UTC)
        headers = {"webhook-id": row.webhook_id, "webhook-timestamp": str(int(ts)),
                   "webhook-signature": self._signer(row.subscription_id, row.secret).sign(row.webhook_id, stamp,
                                                                                             row.body)}
        t0 = time.perf_counter()
        code, excerpt, error = self.sender.post(row.url, row.body.encode(), headers)
        latency = int((time.perf_counter() - t0) * 1000)
        if self.ws.crash_after_send:
            os._exit(9)  # TEST HOOK (DURASCOPE_TEST_CRASH_AFTER_SEND): sent, not recorded
        ok = code is not None and 200 <= code < 300
        if code is not None and not ok and error is None:
            error = f"HTTP {code}"
        return Outcome(row.id, row.subscription_id, row.attempts + 1, int(ts * 1000), ok, code, latency, error,
                       excerpt, bool(row.manual))

    def send_due(self) -> int:
        now = now_ms()
        due = self._due(now)
        if not due:
            nxt = self._next_due_ms()
            if nxt is not None:
                self._wake_at(nxt)
            return 0
        if len(due) == 1 or self.ws.concurrency == 1:
            outcomes = [self._send_one(r) for r in due]
        else:
            outcomes = list(self._pool.map(self._send_one, due))
        self._record(outcomes)
        return len(outcomes)

    def _record(self, outcomes: list[Outcome]) -> None:
        d, w, a = WebhookDelivery.__table__, WebhookSubscription.__table__, WebhookAttempt.__table__
        now = now_ms()
        failed_subs: dict[str, Outcome] = {}
        ok_subs: set[str] = set()
        with self.db.write() as conn:
            conn.execute(insert(a), [{"delivery_id": o.delivery_id, "subscription_id": o.subscription_id,
                                      "attempt": o.attempt, "ts_ms": o.ts_ms, "status_code": o.status_code,
                                      "latency_ms": o.latency_ms, "ok": o.ok, "error": o.error,
                                      "response_excerpt": o.excerpt, "manual": o.manual} for o in outcomes])
            done = [o for o in outcomes if o.ok]
            if done:
                conn.execute(update(d).where(d.c.id == _bp("did")).values(
                    state="succeeded", attempts=_bp("att"), delivered_ms=_bp("dms"), last_status_code=_bp("code"),
                    last_error=None, manual=False),
                    [{"did": o.delivery_id, "att": o.attempt, "dms": o.ts_ms + o.latency_ms, "code": o.status_code}
                     for o in done])
            retry = [o for o in outcomes if not o.ok]
            if retry:
                conn.execute(update(d).where(d.c.id == _bp("did")).values(
                    attempts=_bp("att"), next_attempt_ms=_bp("due"), last_status_code=_bp("code"),
                    last_error=_bp("err"), manual=False),
                    [{"did": o.delivery_id, "att": o.attempt, "due": now + backoff_ms(o.attempt, self.ws, self._rng),
                      "code": o.status_code, "err": o.error} for o in retry])
            for o in outcomes:
                if o.ok:
                    ok_subs.add(o.subscription_id)
                else:
                    failed_subs[o.subscription_id] = o
            for sub_id in ok_subs:
                if sub_id not in failed_subs:
                    conn.execute(update(w).where(w.c.id == sub_id, w.c.consecutive_failures != 0)
                                 .values(consecutive_failures=0))
            # One failed round per subscription per pass counts once (several executions may fail together).
            for sub_id, o in failed_subs.items():
                row = conn.execute(select(w.c.consecutive_failures, w.c.max_failures, w.c.enabled)
                                   .where(w.c.id == sub_id)).first()
                if row is None:
                    continue
                n = row.consecutive_failures + 1
                values: dict[str, Any] = {"consecutive_failures": n}
                if n >= row.max_failures and row.enabled:
                    values.update(enabled=False, updated_ms=now, disabled_reason=(
                        f"disabled after {n} consecutive failed delivery attempts; last: {o.error or 'failed'}")[:1000])
                    log.warning("webhook subscription %s disabled after %d failed attempts", sub_id, n)
                conn.execute(update(w).where(w.c.id == sub_id).values(**values))


def _bp(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


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
