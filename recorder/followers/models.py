"""Tables of the followers (revision 0002), on the same ``Base`` as the log.

* ``followers``             one row per follower: the last log position it has handled
                            (``webhook:<subscription id>``) or a lease (``webhook-dispatcher``).
* ``webhook_subscriptions`` URL, secret, filters, enabled flag, the reason it was disabled and
                            since when it has been failing (revision 0005).
* ``webhook_deliveries``    one row per (subscription, status change): its due time, state and
                            the stable ``webhook-id``; the retry schedule lives here.
* ``webhook_attempts``      the delivery log: every HTTP attempt with code, latency, excerpt.
* ``webhook_function_status`` the last terminal status per (subscription, function), for
                            ``on_change_only``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Identity, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from recorder.store.models import Base, BigId


class Follower(Base):
    __tablename__ = "followers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    # JSON list of statuses, or NULL for all five.
    statuses_json: Mapped[str | None] = mapped_column(Text)
    function_filter: Mapped[str | None] = mapped_column(String(256))
    name_prefix: Mapped[str | None] = mapped_column(String(64))
    on_change_only: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Disabled once every attempt has failed for DURASCOPE_WEBHOOKS_DISABLE_AFTER_SECONDS
    # since failing_since_ms (the first failure after the last success) and at least
    # max_failures attempts in a row have failed.
    max_failures: Mapped[int] = mapped_column(Integer)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "position", name="uq_webhook_deliveries_sub_position"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_ms"),
        Index("ix_webhook_deliveries_sub_exec", "subscription_id", "execution_id", "state", "position"),
    )

    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(BigInteger)
    execution_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # The Standard Webhooks message id: stable per (event, subscription).
    webhook_id: Mapped[str] = mapped_column(String(64))
    # pending | succeeded
    state: Mapped[str] = mapped_column(String(16))
    # The EventBridge-shaped event, exactly the bytes that are signed and sent.
    body: Mapped[str] = mapped_column(Text)
    # A manual redeliver was asked for; the next attempt is logged as manual.
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    commit_ms: Mapped[int] = mapped_column(BigInteger)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_sub", "subscription_id", "id"),
        Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    subscription_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)


class WebhookFunctionStatus(Base):
    __tablename__ = "webhook_function_status"

    subscription_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    function_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
