"""Webhook subscriptions: validation, settings, secrets and admin queries.

The address policy (which targets are refused, with sources) is in ``addresses``.

A subscription whose receiver keeps failing is disabled only after a long stretch of
consecutive failure measured in time (five days by default, as the services users know
wait days), and only after at least ``maxFailures`` attempts in a row failed. While it is
disabled, new status changes are still recorded as pending deliveries, so enabling it
delivers what it missed, in order.

Settings (environment):

* ``DURASCOPE_WEBHOOKS_ALLOW_PRIVATE``          1 lifts the address policy (``addresses``).
* ``DURASCOPE_WEBHOOKS_DISABLE_AFTER_SECONDS``  how long every attempt must have failed before a
                                                subscription is disabled (432000 = 5 days; 0 never).
* ``DURASCOPE_WEBHOOKS_MAX_FAILURES``           default of the failed attempts in a row that must
                                                also have happened (20).
* ``DURASCOPE_WEBHOOKS_RETRY_BASE_SECONDS``     first retry delay (2); doubles per attempt,
* ``DURASCOPE_WEBHOOKS_RETRY_MAX_SECONDS``      up to this (600), with jitter (50-100 %).
* ``DURASCOPE_WEBHOOKS_TIMEOUT_SECONDS``        deadline of one attempt, connect to last byte (10).
* ``DURASCOPE_WEBHOOKS_SLOW_SECONDS``           an attempt running longer makes its subscription
                                                "slow": its sends move to threads of their own (2).
* ``DURASCOPE_WEBHOOKS_POLL_SECONDS``           how often the dispatcher looks at the log tail (0.02).
* ``DURASCOPE_WEBHOOKS_LEASE_SECONDS``          dispatcher lease: one active dispatcher per database (15).
* ``DURASCOPE_WEBHOOKS_CONCURRENCY``            parallel HTTP sends (8), and as many again for slow
                                                subscriptions.
* ``DURASCOPE_WEBHOOKS_LOG_RETENTION_DAYS``     days a succeeded delivery and its attempt log are
                                                kept after its last attempt (14; 0 keeps them
                                                forever). Pending deliveries are never pruned.
* ``DURASCOPE_TEST_CRASH_AFTER_SEND``           TEST HOOK ONLY: 1 makes the dispatcher process
                                                ``os._exit(9)`` right after an HTTP send, before the
                                                outcome is recorded (pins at-least-once delivery).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.orm import Session

from recorder.arns import NAME_RE
from recorder.errors import InvalidParameterValueException, ResourceNotFoundException
from recorder.followers.addresses import refused_address, refused_host
from recorder.followers.models import (
    Follower,
    WebhookAttempt,
    WebhookDelivery,
    WebhookFunctionStatus,
    WebhookSubscription,
)
from recorder.followers.status import STATUSES, head_position, parse_statuses
from recorder.store.db import Database

_TRUE = ("1", "true", "yes", "on")
_NAME_PREFIX_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FUNCTION_ARN_PREFIX_RE = re.compile(
    r"^arn:aws:lambda:[a-z0-9-]*(:(\d{0,12}(:(function(:[a-zA-Z0-9_-]*(:[$.a-zA-Z0-9_-]*)?)?)?)?)?)?$"
)


# next_attempt_ms of the pending rows of a disabled subscription: out of the due range
# until it is enabled again (2^53 - 1 stays exact in JSON).
PARKED_MS = 2**53 - 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _env_float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class WebhookSettings:
    allow_private: bool = False
    disable_after_seconds: float = 5 * 86_400.0
    max_failures: int = 20
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    timeout_seconds: float = 10.0
    slow_seconds: float = 2.0
    poll_seconds: float = 0.02
    lease_seconds: float = 15.0
    concurrency: int = 8
    log_retention_days: float = 14.0
    # How often the dispatcher looks for deliveries past the retention (and once at start).
    prune_interval_seconds: float = 3600.0
    crash_after_send: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> WebhookSettings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {
            "allow_private": env.get("DURASCOPE_WEBHOOKS_ALLOW_PRIVATE", "").lower() in _TRUE,
            "disable_after_seconds": max(
                0.0, _env_float(env, "DURASCOPE_WEBHOOKS_DISABLE_AFTER_SECONDS", 5 * 86_400.0)
            ),
            "max_failures": int(_env_float(env, "DURASCOPE_WEBHOOKS_MAX_FAILURES", 20)),
            "retry_base_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_RETRY_BASE_SECONDS", 2.0),
            "retry_max_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_RETRY_MAX_SECONDS", 600.0),
            "timeout_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_TIMEOUT_SECONDS", 10.0),
            "slow_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_SLOW_SECONDS", 2.0),
            "poll_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_POLL_SECONDS", 0.02),
            "lease_seconds": _env_float(env, "DURASCOPE_WEBHOOKS_LEASE_SECONDS", 15.0),
            "concurrency": max(1, int(_env_float(env, "DURASCOPE_WEBHOOKS_CONCURRENCY", 8))),
            "log_retention_days": max(0.0, _env_float(env, "DURASCOPE_WEBHOOKS_LOG_RETENTION_DAYS", 14.0)),
            "crash_after_send": env.get("DURASCOPE_TEST_CRASH_AFTER_SEND", "") in _TRUE,
        }
        values.update(overrides)
        return cls(**values)


# --- URLs ------------------------------------------------------------------------------------


def validate_url(url: Any, allow_private: bool, resolve: bool = True) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidParameterValueException("url is required: an http:// or https:// URL")
    url = url.strip()
    if len(url) > 2048:
        raise InvalidParameterValueException("url is longer than 2048 characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidParameterValueException("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameterValueException(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParameterValueException(f"url must start with http:// or https://, got {url[:100]!r}")
    host = parts.hostname
    if not host:
        raise InvalidParameterValueException(f"url has no host: {url[:100]!r}")
    if parts.fragment:
        raise InvalidParameterValueException("url must not have a #fragment")
    if port == 0:
        raise InvalidParameterValueException("url port must be 1-65535")
    if not allow_private:
        why = refused_host(host)
        if why is None and resolve and not _is_ip(host):
            try:
                infos = socket.getaddrinfo(
                    host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
                )
            except OSError:
                infos = []  # unresolvable now: checked again on every connection
            for info in infos:
                why = refused_address(str(info[4][0]))
                if why:
                    break
        if why:
            raise InvalidParameterValueException(
                f"url refused: {why}; set DURASCOPE_WEBHOOKS_ALLOW_PRIVATE=1 to allow it"
            )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# --- subscriptions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSpec:
    url: str
    statuses: frozenset[str] | None
    function: str | None
    name_prefix: str | None
    on_change_only: bool
    max_failures: int
    description: str | None

    @classmethod
    def from_row(cls, r: Any) -> SubscriptionSpec:
        """A stored subscription (a ``webhook_subscriptions`` row)."""
        return cls(
            r.url,
            frozenset(json.loads(r.statuses_json)) if r.statuses_json else None,
            r.function_filter,
            r.name_prefix,
            bool(r.on_change_only),
            r.max_failures,
            r.description,
        )


def validate_spec(
    url: Any,
    statuses: Any = None,
    function: Any = None,
    name_prefix: Any = None,
    on_change_only: Any = False,
    max_failures: Any = None,
    description: Any = None,
    settings: WebhookSettings | None = None,
) -> SubscriptionSpec:
    settings = settings or WebhookSettings.from_env()
    clean_url = validate_url(url, settings.allow_private)
    if statuses is not None and not isinstance(statuses, (list, tuple, set, frozenset, str)):
        raise InvalidParameterValueException(f"statuses must be a list of {', '.join(STATUSES)}")
    try:
        sts = parse_statuses([statuses] if isinstance(statuses, str) else statuses)
    except ValueError as exc:
        raise InvalidParameterValueException(f"statuses: {exc}") from None
    if function is not None and function != "":
        if (
            not isinstance(function, str)
            or len(function) > 256
            or not (NAME_RE.match(function) or _FUNCTION_ARN_PREFIX_RE.match(function))
        ):
            raise InvalidParameterValueException(
                "function must be a function name (or name prefix) of [a-zA-Z0-9_-]{1,64} or a function ARN "
                f"prefix such as arn:aws:lambda:us-east-1:123456789012:function:orders, got {str(function)[:100]!r}"
            )
    else:
        function = None
    if name_prefix is not None and name_prefix != "":
        if not isinstance(name_prefix, str) or not _NAME_PREFIX_RE.match(name_prefix):
            raise InvalidParameterValueException(
                f"namePrefix must match [a-zA-Z0-9_-]{{1,64}} (execution names do), got {str(name_prefix)[:100]!r}"
            )
    else:
        name_prefix = None
    if not isinstance(on_change_only, bool):
        raise InvalidParameterValueException("onChangeOnly must be true or false")
    if on_change_only and sts is not None and "RUNNING" in sts:
        raise InvalidParameterValueException(
            "onChangeOnly compares terminal statuses (SUCCEEDED, FAILED, TIMED_OUT, STOPPED); it cannot be "
            "combined with status RUNNING"
        )
    if max_failures is None:
        max_failures = settings.max_failures
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or not 1 <= max_failures <= 10_000:
        raise InvalidParameterValueException("maxFailures must be a whole number from 1 to 10000")
    if description is not None and (not isinstance(description, str) or len(description) > 1000):
        raise InvalidParameterValueException("description must be text of at most 1000 characters")
    return SubscriptionSpec(clean_url, sts, function, name_prefix, on_change_only, max_failures, description or None)


def new_secret() -> str:
    return "whsec_" + __import__("base64").b64encode(secrets.token_bytes(32)).decode()


def follower_name(subscription_id: str) -> str:
    return f"webhook:{subscription_id}"


def create_subscription(db: Database, spec: SubscriptionSpec) -> dict[str, Any]:
    """Store a subscription; it follows the log from its current head (changes committed
    after it was created). Returns it *with* its secret, the only time that is shown."""
    sub_id = str(uuid.uuid4())
    secret = new_secret()
    now = now_ms()
    with db.write() as conn:
        head = head_position(conn)
        conn.execute(
            insert(WebhookSubscription),
            {
                "id": sub_id,
                "url": spec.url,
                "secret": secret,
                "description": spec.description,
                "statuses_json": json.dumps(sorted(spec.statuses)) if spec.statuses else None,
                "function_filter": spec.function,
                "name_prefix": spec.name_prefix,
                "on_change_only": spec.on_change_only,
                "enabled": True,
                "disabled_reason": None,
                "max_failures": spec.max_failures,
                "consecutive_failures": 0,
                "failing_since_ms": None,
                "created_ms": now,
                "updated_ms": now,
            },
        )
        conn.execute(
            insert(Follower),
            {
                "name": follower_name(sub_id),
                "position": head,
                "owner": None,
                "lease_expires_ms": None,
                "updated_ms": now,
            },
        )
    out = get_subscription(db, sub_id)
    out["secret"] = secret
    return out


def _row_to_dict(row: Any, position: int | None, stats: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "statuses": json.loads(row.statuses_json) if row.statuses_json else None,
        "function": row.function_filter,
        "namePrefix": row.name_prefix,
        "onChangeOnly": bool(row.on_change_only),
        "enabled": bool(row.enabled),
        "disabledReason": row.disabled_reason,
        "maxFailures": row.max_failures,
        "consecutiveFailures": row.consecutive_failures,
        "failingSinceMs": row.failing_since_ms,
        "createdMs": row.created_ms,
        "updatedMs": row.updated_ms,
        "position": position,
    }
    if stats is not None:
        out["deliveries"] = stats
    return out


def _find(conn: Connection | Session, sub_id: str) -> Any:
    if not isinstance(sub_id, str) or len(sub_id) > 36:
        raise ResourceNotFoundException(f"Webhook subscription not found: {str(sub_id)[:64]}")
    row = conn.execute(select(WebhookSubscription.__table__).where(WebhookSubscription.id == sub_id)).first()
    if row is None:
        raise ResourceNotFoundException(f"Webhook subscription not found: {sub_id}")
    return row


def _stats(conn: Connection | Session, sub_id: str) -> dict[str, int]:
    d = WebhookDelivery
    rows = conn.execute(select(d.state, func.count()).where(d.subscription_id == sub_id).group_by(d.state)).all()
    got = {r[0]: r[1] for r in rows}
    return {"pending": got.get("pending", 0), "succeeded": got.get("succeeded", 0)}


def get_subscription(db: Database, sub_id: str) -> dict[str, Any]:
    with db.read() as s:
        row = _find(s, sub_id)
        pos = s.execute(select(Follower.position).where(Follower.name == follower_name(sub_id))).scalar()
        return _row_to_dict(row, pos, _stats(s, sub_id))


def list_subscriptions(db: Database) -> list[dict[str, Any]]:
    with db.read() as s:
        rows = s.execute(
            select(WebhookSubscription.__table__).order_by(WebhookSubscription.created_ms, WebhookSubscription.id)
        ).all()
        positions = dict(
            s.execute(select(Follower.name, Follower.position).where(Follower.name.like("webhook:%"))).all()
        )
        return [_row_to_dict(r, positions.get(follower_name(r.id)), _stats(s, r.id)) for r in rows]


def set_enabled(db: Database, sub_id: str, enabled: bool, reason: str | None = None) -> dict[str, Any]:
    now = now_ms()
    with db.write() as conn:
        _find(conn, sub_id)
        values: dict[str, Any] = {"enabled": enabled, "updated_ms": now}
        if enabled:
            values.update(disabled_reason=None, consecutive_failures=0, failing_since_ms=None)
            # What waited while it was disabled is due now, in order.
            conn.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == sub_id, WebhookDelivery.state == "pending")
                .values(next_attempt_ms=now)
            )
        else:
            values["disabled_reason"] = reason or "disabled by a user"
            park_subscription(conn, sub_id)
        conn.execute(update(WebhookSubscription).where(WebhookSubscription.id == sub_id).values(**values))
    return get_subscription(db, sub_id)


def park_subscription(conn: Connection, sub_id: str) -> None:
    """A disabled subscription's pending rows leave the due range until it is enabled."""
    conn.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == sub_id, WebhookDelivery.state == "pending")
        .values(next_attempt_ms=PARKED_MS)
    )


def delete_subscription(db: Database, sub_id: str) -> None:
    with db.write() as conn:
        _find(conn, sub_id)
        # The follower row first: a fan-out that holds it finishes before the deliveries
        # below are deleted, and one that comes later finds no row to move.
        conn.execute(delete(Follower).where(Follower.name == follower_name(sub_id)))
        for model in (WebhookAttempt, WebhookDelivery, WebhookFunctionStatus):
            conn.execute(delete(model).where(model.subscription_id == sub_id))
        conn.execute(delete(WebhookSubscription).where(WebhookSubscription.id == sub_id))


def _delivery_dict(r: Any) -> dict[str, Any]:
    waiting = r.state == "pending" and r.next_attempt_ms < PARKED_MS  # not parked by a disable
    return {
        "id": r.id,
        "position": r.position,
        "executionId": r.execution_id,
        "status": r.status,
        "webhookId": r.webhook_id,
        "state": r.state,
        "attempts": r.attempts,
        "nextAttemptMs": r.next_attempt_ms if waiting else None,
        "createdMs": r.created_ms,
        "deliveredMs": r.delivered_ms,
        "lastStatusCode": r.last_status_code,
        "lastError": r.last_error,
    }


def _attempt_dict(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "deliveryId": a.delivery_id,
        "attempt": a.attempt,
        "timeMs": a.ts_ms,
        "statusCode": a.status_code,
        "latencyMs": a.latency_ms,
        "ok": bool(a.ok),
        "error": a.error,
        "responseExcerpt": a.response_excerpt,
        "manual": bool(a.manual),
    }


def list_deliveries(db: Database, sub_id: str, limit: int = 50, state: str | None = None) -> list[dict[str, Any]]:
    """Newest first, each with its attempts (the delivery log)."""
    d, a = WebhookDelivery.__table__, WebhookAttempt.__table__
    with db.read() as s:
        _find(s, sub_id)
        q = select(d).where(d.c.subscription_id == sub_id)
        if state:
            q = q.where(d.c.state == state)
        rows = s.execute(q.order_by(d.c.position.desc()).limit(limit)).all()
        ids = [r.id for r in rows]
        attempts: dict[int, list[dict[str, Any]]] = {}
        if ids:
            for att in s.execute(select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.id)).all():
                attempts.setdefault(att.delivery_id, []).append(_attempt_dict(att))
        return [{**_delivery_dict(r), "attemptLog": attempts.get(r.id, [])} for r in rows]


def list_attempts(db: Database, sub_id: str, limit: int = 100) -> list[dict[str, Any]]:
    a = WebhookAttempt.__table__
    with db.read() as s:
        _find(s, sub_id)
        rows = s.execute(select(a).where(a.c.subscription_id == sub_id).order_by(a.c.id.desc()).limit(limit)).all()
        return [_attempt_dict(r) for r in rows]


def redeliver(db: Database, sub_id: str, delivery_id: int) -> dict[str, Any]:
    """Send a delivery again (same webhook-id, so receivers can deduplicate)."""
    now = now_ms()
    with db.write() as conn:
        sub = _find(conn, sub_id)
        if not sub.enabled:
            raise InvalidParameterValueException(
                f"webhook subscription {sub_id} is disabled ({sub.disabled_reason}); enable it first"
            )
        row = conn.execute(
            select(WebhookDelivery.__table__).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == sub_id
            )
        ).first()
        if row is None:
            raise ResourceNotFoundException(f"Delivery {delivery_id} not found for webhook subscription {sub_id}")
        conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(state="pending", next_attempt_ms=now, manual=True)
        )
        row = conn.execute(select(WebhookDelivery.__table__).where(WebhookDelivery.id == delivery_id)).first()
    return _delivery_dict(row)
