"""The delivery outbox: ``webhook_deliveries`` rows and the statements the dispatcher runs on them.

* ``fan_out``  status changes after each subscription's position -> one pending row per
               match, and the new position, in one transaction (docs/protocol.md#invariants, 5). A disabled
               subscription is fanned out too: what it misses waits for it, and survives
               the retention purge of the executions.
* ``claim``    due rows that are the earliest pending one of their (subscription,
               execution), in due order; one statement, driven by
               ``ix_webhook_deliveries_due`` with a LIMIT (no sort of the whole backlog)
               and, per candidate, a probe of ``ix_webhook_deliveries_sub_exec``.
* ``record``   one transaction per batch of HTTP outcomes: the attempt log, each
               delivery succeeded or rescheduled, since when each subscription has been
               failing, and the disable once that stretch is long enough.
* ``prune``    succeeded rows (and their attempt log) past the retention period.

Rows that cannot be sent keep out of the due range, so the due scan stays short however
large the backlog: a row waiting behind an earlier delivery of its execution that is in
backoff gets that delivery's due time ("parked"), and the rows of a disabled
subscription get ``PARKED_MS`` until it is enabled again (``webhooks.set_enabled``).
Parking only ever delays a row to a time its predecessor is due at; the order itself
is always checked in ``claim``.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, select, text, update

from recorder.config import Settings
from recorder.followers.bulk import insert_rows, update_rows
from recorder.followers.models import (
    Follower,
    WebhookAttempt,
    WebhookDelivery,
    WebhookFunctionStatus,
    WebhookSubscription,
)
from recorder.followers.status import Filter, StatusChange, read_status_changes
from recorder.followers.webhooks import (
    PARKED_MS,
    SubscriptionSpec,
    WebhookSettings,
    follower_name,
    now_ms,
    park_subscription,
)
from recorder.store.db import Database
from recorder.store.models import Event

log = logging.getLogger("durascope.webhooks")

_D, _W, _A, _F = (
    WebhookDelivery.__table__,
    WebhookSubscription.__table__,
    WebhookAttempt.__table__,
    Follower.__table__,
)
_EV = Event.__table__
_WEBHOOK_ID_NS = uuid.UUID("2b0d5c8e-9f7a-4c1e-8d3b-77656268686b")


def webhook_id(subscription_id: str, execution_id: str, position: int) -> str:
    """Stable per (event, subscription): every attempt and redelivery carries it."""
    return "msg_" + uuid.uuid5(_WEBHOOK_ID_NS, f"{subscription_id}/{execution_id}/{position}").hex


def backoff_ms(attempts: int, ws: WebhookSettings, rng: random.Random | None = None) -> int:
    """Delay after the ``attempts``-th failure: base * 2^(n-1), capped, times 50-100 % jitter."""
    delay = min(ws.retry_max_seconds, ws.retry_base_seconds * (2 ** min(max(attempts - 1, 0), 30)))
    return int(delay * (rng or random).uniform(0.5, 1.0) * 1000)


@dataclass(frozen=True)
class Due:
    """A claimed delivery: the exact bytes to sign and send, and where to."""

    id: int
    subscription_id: str
    execution_id: str
    webhook_id: str
    body: str
    attempts: int
    manual: bool
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    subscription_id: str
    execution_id: str
    attempt: int
    ts_ms: int
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None
    manual: bool


# --- fan-out -----------------------------------------------------------------------------------


def fan_out(db: Database, settings: Settings, batch: int) -> int:
    """Fan out every subscription that is behind the log head, enabled or not. Returns the
    rows inserted, or 1 when a full batch matched nothing (more may follow)."""
    # Read (and encode, below) before the write transactions: on SQLite they hold the one
    # write lock. The position is compare-and-set when written.
    with db.read() as s:
        # One statement when idle (this runs every poll): the head is a subquery.
        head = select(func.max(_EV.c.position)).scalar_subquery()
        subs = s.execute(
            select(_W, _F.c.position).join(_F, _F.c.name == ("webhook:" + _W.c.id)).where(_F.c.position < head)
        ).all()
        # Subscriptions at the same position (the usual case: all at the head) share one read.
        reads = {pos: read_status_changes(s, pos, batch) for pos in sorted({r.position for r in subs})}
    return sum(
        _fan_out_one(db, settings, r.id, SubscriptionSpec.from_row(r), r.position, *reads[r.position], batch)
        for r in subs
    )


def _fan_out_one(
    db: Database,
    settings: Settings,
    sub_id: str,
    sub: SubscriptionSpec,
    pos: int,
    changes: Sequence[StatusChange],
    cursor: int,
    batch: int,
) -> int:
    flt = Filter(None, sub.function, sub.name_prefix)
    matching = [ch for ch in changes if flt.matches_function(ch, settings)]
    bodies = {
        ch.position: json.dumps(ch.to_event(settings), separators=(",", ":")) for ch in matching if _passes(sub, ch)
    }
    now = now_ms()
    name = follower_name(sub_id)
    with db.write() as conn:
        # Compare-and-set: the position moves only from where it was read; otherwise someone
        # else fanned these out (or the subscription was removed with its follower row). Rows
        # of a disabled subscription are due now like any other: the claim parks them, and
        # re-checks the subscription as it does, so a concurrent enable always wins.
        moved = conn.execute(
            update(_F).where(_F.c.name == name, _F.c.position == pos).values(position=cursor, updated_ms=now)
        )
        if moved.rowcount != 1:
            return 0
        wanted = _changed(conn, sub_id, matching) if sub.on_change_only else matching
        rows = [
            {
                "subscription_id": sub_id,
                "position": ch.position,
                "execution_id": ch.execution_id,
                "status": ch.status,
                "webhook_id": webhook_id(sub_id, ch.execution_id, ch.position),
                "state": "pending",
                "body": bodies[ch.position],
                "manual": False,
                "attempts": 0,
                "next_attempt_ms": now,
                "created_ms": now,
                "commit_ms": ch.ts_ms,
                "delivered_ms": None,
                "last_status_code": None,
                "last_error": None,
            }
            for ch in wanted
            if ch.position in bodies
        ]
        insert_rows(conn, _D, rows)
    return len(rows) or (1 if cursor > pos and len(changes) >= batch else 0)


def _passes(sub: SubscriptionSpec, ch: StatusChange) -> bool:
    """The status and name filters (the function filter comes first: on_change_only
    compares every terminal change of a matching function, whatever its status or name)."""
    return (sub.statuses is None or ch.status in sub.statuses) and (
        not sub.name_prefix or ch.name.startswith(sub.name_prefix)
    )


def _changed(conn: Connection, sub_id: str, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """Terminal changes whose status differs from the previous terminal status of the same
    function; the last status per function is read and written once per batch."""
    t = WebhookFunctionStatus.__table__
    terminal = [ch for ch in changes if ch.terminal]
    names = sorted({ch.function_name for ch in terminal})
    if not names:
        return []
    before = dict(
        conn.execute(
            select(t.c.function_name, t.c.status).where(t.c.subscription_id == sub_id, t.c.function_name.in_(names))
        ).all()
    )
    last = dict(before)
    out = []
    for ch in terminal:
        if last.get(ch.function_name) != ch.status:
            out.append(ch)
        last[ch.function_name] = ch.status
    moved = [n for n in names if n in before and before[n] != last[n]]
    if moved:
        conn.execute(delete(t).where(t.c.subscription_id == sub_id, t.c.function_name.in_(moved)))
    insert_rows(
        conn,
        t,
        [
            {"subscription_id": sub_id, "function_name": n, "status": last[n]}
            for n in names
            if n not in before or n in moved
        ],
    )
    return out


# --- claim ------------------------------------------------------------------------------------


def claim(
    db: Database, now: int, limit: int, exclude: Collection[int] = (), skip_subscriptions: Collection[str] = ()
) -> list[Due]:
    """Due deliveries that may be sent now, at most ``limit``, skipping ``exclude`` (in flight)
    and the rows of ``skip_subscriptions`` (slow ones that have enough in flight).

    A row is sendable when no earlier row of its (subscription, execution) is pending: a
    later event of an execution is never sent before an earlier one succeeded. Rows that
    are not sendable are parked (see the module docstring) so later claims skip them."""
    earlier = _D.alias("earlier")
    blocked_until = (
        select(func.max(earlier.c.next_attempt_ms))
        .where(
            earlier.c.subscription_id == _D.c.subscription_id,
            earlier.c.execution_id == _D.c.execution_id,
            earlier.c.state == "pending",
            earlier.c.position < _D.c.position,
        )
        .scalar_subquery()
    )
    q = (
        select(
            _D.c.id,
            _D.c.subscription_id,
            _D.c.execution_id,
            _D.c.webhook_id,
            _D.c.body,
            _D.c.attempts,
            _D.c.manual,
            _W.c.url,
            _W.c.secret,
            _W.c.enabled,
            blocked_until.label("blocked_until"),
        )
        .join(_W, _W.c.id == _D.c.subscription_id)
        .where(_D.c.state == "pending", _D.c.next_attempt_ms <= now)
    )
    if exclude:
        q = q.where(_D.c.id.not_in(list(exclude)))
    if skip_subscriptions:
        q = q.where(_D.c.subscription_id.not_in(sorted(skip_subscriptions)))
    # Due order only: ix_webhook_deliveries_due gives it, so the scan stops at the LIMIT.
    with db.read() as s:
        rows = s.execute(q.order_by(_D.c.next_attempt_ms).limit(limit)).all()
    out: list[Due] = []
    parked: list[dict[str, Any]] = []
    disabled: set[str] = set()
    for r in rows:
        if not r.enabled:
            disabled.add(r.subscription_id)
        elif r.blocked_until is None:
            out.append(
                Due(
                    r.id,
                    r.subscription_id,
                    r.execution_id,
                    r.webhook_id,
                    r.body,
                    r.attempts,
                    bool(r.manual),
                    r.url,
                    r.secret,
                )
            )
        elif r.blocked_until > now:
            parked.append({"row": r.id, "until": r.blocked_until})
    if parked or disabled:
        _park(db, now, parked, disabled)
    return out


def _park(db: Database, now: int, parked: Sequence[dict[str, Any]], disabled: Collection[str]) -> None:
    """Move rows a claim could not send out of the due range. Both statements re-check
    what the claim read, so a concurrent enable or redeliver always wins."""
    with db.write() as conn:
        if parked:  # rare (a predecessor in backoff): one statement per row is fine
            conn.execute(
                update(_D)
                .where(_D.c.id == bindparam("row"), _D.c.state == "pending", _D.c.next_attempt_ms <= now)
                .values(next_attempt_ms=bindparam("until")),
                list(parked),
            )
        for sub_id in sorted(disabled):
            conn.execute(
                update(_D)
                .where(
                    _D.c.subscription_id == sub_id,
                    _D.c.state == "pending",
                    ~exists().where(_W.c.id == sub_id, _W.c.enabled.is_(True)),
                )
                .values(next_attempt_ms=PARKED_MS)
            )


def refresh_statistics(db: Database) -> None:
    """Let PostgreSQL's planner see a backlog that fan-out just created.

    Until the table is analyzed it looks empty to the planner, which then sorts every due
    row instead of walking ``ix_webhook_deliveries_due`` up to the LIMIT: 26 ms instead of
    2.5 ms per claim at 10,000 pending, and growing with the backlog. Autovacuum gets there too,
    but only after its next nap (up to a minute). SKIP_LOCKED: never wait for it."""
    if db.dialect == "postgresql":
        with db.write() as conn:
            conn.execute(text("ANALYZE (SKIP_LOCKED) webhook_deliveries"))


def next_due_ms(db: Database) -> int | None:
    """When the earliest pending delivery of an enabled subscription is due."""
    with db.read() as s:
        return s.execute(
            select(_D.c.next_attempt_ms)
            .join(_W, _W.c.id == _D.c.subscription_id)
            .where(_D.c.state == "pending", _D.c.next_attempt_ms < PARKED_MS, _W.c.enabled.is_(True))
            .order_by(_D.c.next_attempt_ms)
            .limit(1)
        ).scalar()


# --- record -----------------------------------------------------------------------------------


def record(
    db: Database,
    outcomes: Sequence[Outcome],
    ws: WebhookSettings,
    rng: random.Random,
    known_clean: Collection[str] = (),
) -> set[str]:
    """Write a batch of outcomes in one transaction.

    ``known_clean``: subscriptions known not to be failing (no statement for them when all
    their outcomes succeeded). Returns the subscriptions that are not failing now."""
    now = now_ms()
    done = [o for o in outcomes if o.ok]
    retry = [o for o in outcomes if not o.ok]
    with db.write() as conn:
        insert_rows(
            conn,
            _A,
            [
                {
                    "delivery_id": o.delivery_id,
                    "subscription_id": o.subscription_id,
                    "attempt": o.attempt,
                    "ts_ms": o.ts_ms,
                    "status_code": o.status_code,
                    "latency_ms": o.latency_ms,
                    "ok": o.ok,
                    "error": o.error,
                    "response_excerpt": o.excerpt,
                    "manual": o.manual,
                }
                for o in outcomes
            ],
        )
        update_rows(
            conn,
            _D,
            "id",
            [
                {
                    "id": o.delivery_id,
                    "state": "succeeded",
                    "attempts": o.attempt,
                    "delivered_ms": o.ts_ms + o.latency_ms,
                    "last_status_code": o.status_code,
                    "last_error": None,
                    "manual": False,
                }
                for o in done
            ],
        )
        update_rows(
            conn,
            _D,
            "id",
            [
                {
                    "id": o.delivery_id,
                    "attempts": o.attempt,
                    "next_attempt_ms": now + backoff_ms(o.attempt, ws, rng),
                    "last_status_code": o.status_code,
                    "last_error": o.error,
                    "manual": False,
                }
                for o in retry
            ],
        )
        for o in done:
            if o.manual:
                # Rows parked behind this one wait for its old retry time: they are free now.
                _release(conn, o.subscription_id, o.execution_id, now)
        return _account(conn, outcomes, ws, now, known_clean)


def _account(
    conn: Connection, outcomes: Sequence[Outcome], ws: WebhookSettings, now: int, known_clean: Collection[str]
) -> set[str]:
    """Per subscription: a success ends a failing stretch (and makes the deliveries waiting
    in backoff due at once: the receiver is back); failures start or extend one, and a
    stretch of ``disable_after_seconds`` with at least ``max_failures`` attempts disables it."""
    by_sub: dict[str, list[Outcome]] = {}
    for o in sorted(outcomes, key=lambda o: o.ts_ms):
        by_sub.setdefault(o.subscription_id, []).append(o)
    clean: set[str] = set()
    failing: dict[str, list[Outcome]] = {}
    for sub_id, outs in by_sub.items():
        last_ok = max((i for i, o in enumerate(outs) if o.ok), default=None)
        if last_ok is None:
            failing[sub_id] = outs
        elif last_ok == len(outs) - 1:
            clean.add(sub_id)
        else:  # answered, then failed again in the same batch: a new stretch starts
            after = outs[last_ok + 1 :]
            conn.execute(
                update(_W)
                .where(_W.c.id == sub_id)
                .values(consecutive_failures=len(after), failing_since_ms=after[0].ts_ms)
            )
    recovered = sorted(clean - set(known_clean))
    if recovered:
        back = list(
            conn.execute(
                update(_W)
                .where(_W.c.id.in_(recovered), (_W.c.consecutive_failures != 0) | _W.c.failing_since_ms.is_not(None))
                .values(consecutive_failures=0, failing_since_ms=None)
                .returning(_W.c.id)
            ).scalars()
        )
        if back:
            conn.execute(
                update(_D)
                .where(
                    _D.c.subscription_id.in_(back),
                    _D.c.state == "pending",
                    _D.c.next_attempt_ms > now,
                    _D.c.next_attempt_ms < PARKED_MS,
                )
                .values(next_attempt_ms=now)
            )
    if failing:
        subs = conn.execute(
            select(_W.c.id, _W.c.consecutive_failures, _W.c.failing_since_ms, _W.c.max_failures, _W.c.enabled).where(
                _W.c.id.in_(sorted(failing))
            )
        ).all()
        for sub in subs:
            _count_failures(conn, sub, failing[sub.id], ws, now)
    return clean


def _release(conn: Connection, sub_id: str, execution_id: str, now: int) -> None:
    conn.execute(
        update(_D)
        .where(
            _D.c.subscription_id == sub_id,
            _D.c.execution_id == execution_id,
            _D.c.state == "pending",
            _D.c.next_attempt_ms > now,
            _D.c.next_attempt_ms < PARKED_MS,
        )
        .values(next_attempt_ms=now)
    )


def _count_failures(conn: Connection, sub: Any, failed: Sequence[Outcome], ws: WebhookSettings, now: int) -> None:
    n = sub.consecutive_failures + len(failed)
    since = sub.failing_since_ms if sub.failing_since_ms is not None else failed[0].ts_ms
    values: dict[str, Any] = {"consecutive_failures": n, "failing_since_ms": since}
    stretch_ms = now - since
    if (
        sub.enabled
        and ws.disable_after_seconds > 0
        and stretch_ms >= ws.disable_after_seconds * 1000
        and n >= sub.max_failures
    ):
        last = failed[-1]
        values.update(
            enabled=False,
            updated_ms=now,
            disabled_reason=(
                f"disabled after failing for {_duration(stretch_ms)} ({n} consecutive failed delivery attempts); "
                f"last: {last.error or 'failed'}"
            )[:1000],
        )
        log.warning(
            "webhook subscription %s disabled after failing for %s (%d attempts)", sub.id, _duration(stretch_ms), n
        )
        park_subscription(conn, sub.id)
    conn.execute(update(_W).where(_W.c.id == sub.id).values(**values))


def _duration(ms: int) -> str:
    seconds = ms / 1000
    for unit, size in (("days", 86_400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


# --- prune ------------------------------------------------------------------------------------


def prune(db: Database, cutoff_ms: int, batch: int = 1000) -> int:
    """Delete up to ``batch`` succeeded deliveries last attempted before ``cutoff_ms``, with
    their attempt log, in one short transaction; returns how many. Pending rows are never
    touched. A succeeded row keeps the due time of its last attempt in ``next_attempt_ms``
    (<= ``delivered_ms``), so ``ix_webhook_deliveries_due`` finds the old ones directly."""
    with db.write() as conn:
        ids = list(
            conn.execute(
                select(_D.c.id)
                .where(_D.c.state == "succeeded", _D.c.next_attempt_ms < cutoff_ms, _D.c.delivered_ms < cutoff_ms)
                .order_by(_D.c.next_attempt_ms)
                .limit(batch)
            ).scalars()
        )
        if not ids:
            return 0
        # State checked again: a redeliver may have made one pending since the SELECT.
        gone = list(
            conn.execute(delete(_D).where(_D.c.id.in_(ids), _D.c.state == "succeeded").returning(_D.c.id)).scalars()
        )
        if gone:
            conn.execute(delete(_A).where(_A.c.delivery_id.in_(gone)))
    return len(ids)
