"""Viewer login sessions, kept by the server so that logging out ends them everywhere.

The browser holds a random token in its signed session cookie; the table holds only the
token's SHA-256, so a copy of the database lets nobody in. Every engine process of a
deployment reads the same rows: a logout on one ends the session on all of them, and an
expired or revoked row is refused even while the cookie is still signed and unexpired.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from recorder.store.db import Database
from recorder.store.models import Base, table_of


class ViewerSession(Base):
    __tablename__ = "viewer_sessions"
    __table_args__ = (Index("ix_viewer_sessions_expires", "expires_ms"),)

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def open_session(db: Database, key_id: str, lifetime_seconds: float) -> str:
    """A new session for ``key_id``; returns the token for the cookie. Expired rows go."""
    token = secrets.token_urlsafe(32)
    now = _now_ms()
    with db.write() as conn:
        conn.execute(table_of(ViewerSession).delete().where(ViewerSession.expires_ms < now))
        conn.execute(
            table_of(ViewerSession)
            .insert()
            .values(
                token_sha256=_digest(token),
                key_id=key_id,
                created_ms=now,
                expires_ms=now + int(lifetime_seconds * 1000),
                revoked_ms=None,
            )
        )
    return token


def session_key_id(db: Database, token: str) -> str | None:
    """The key id of a live session, or None if the token is unknown, expired or revoked."""
    table = table_of(ViewerSession)
    with db.read() as s:
        row = s.execute(table.select().where(table.c.token_sha256 == _digest(token))).first()
    if row is None or row.revoked_ms is not None or row.expires_ms <= _now_ms():
        return None
    key_id: str = row.key_id
    return key_id


def revoke_session(db: Database, token: str) -> None:
    table = table_of(ViewerSession)
    with db.write() as conn:
        conn.execute(
            table.update()
            .where(table.c.token_sha256 == _digest(token), table.c.revoked_ms.is_(None))
            .values(revoked_ms=_now_ms())
        )
