"""Whether the database can be used now, and telling it once per change.

A PostgreSQL restart, a network cut or a full disk makes every transaction fail for a
while: every API request, every engine tick, every follower's pass. Each of those used
to log its own traceback (639 of them for one 20 s outage), and the API answered 500.
Here such failures are told apart from bugs (``outage_of``), ``Database`` raises them
as ``DatabaseUnavailable`` (the API answers 503 with ``Retry-After``), and
``Availability`` logs one line when an outage starts and one when it ends.

A full disk fails writes only, so only a write that succeeds ends it; a lost server
fails reads too, and any transaction that succeeds ends that. An outage ends only once
transactions have succeeded for ``SETTLE_SECONDS`` after its last failure: a server
shutting down terminates its sessions one by one, and a transaction that got through in
between is no end of the outage.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("durascope.store")

SETTLE_SECONDS = 1.0

# SQLite result codes (``sqlite3.Error.sqlite_errorname``, extended codes included by
# prefix) of a database that cannot be used for the moment.
_SQLITE_DISK_FULL = ("SQLITE_FULL",)
_SQLITE_UNAVAILABLE = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_READONLY", "SQLITE_PROTOCOL")
# PostgreSQL SQLSTATEs: class 08 (connection exception), 53 (insufficient resources:
# 53100 disk full, 53200 out of memory, 53300 too many connections) and the server
# shutting down or starting up (57P01-57P05). Not 40001/40P01 (serialization failure,
# deadlock) nor 57014 (statement timeout): those are about one transaction, not the
# database.
_PG_DISK_FULL = ("53100",)
_PG_UNAVAILABLE_CLASSES = ("08", "53")
_PG_UNAVAILABLE = ("57P01", "57P02", "57P03", "57P04", "57P05")


@dataclass(frozen=True)
class Outage:
    disk_full: bool
    # The driver's words: for the log only (they name hosts, ports and paths).
    detail: str

    @property
    def message(self) -> str:
        """What clients are told."""
        if self.disk_full:
            return "The database's disk is full; retry once space has been freed"
        return "The database is unavailable; retry later"

    @property
    def retry_after_seconds(self) -> int:
        # Someone has to free space on a full disk; a restarting server is back in seconds.
        return 30 if self.disk_full else 5


class DatabaseUnavailable(Exception):
    """A transaction failed because the database cannot be used now (not a bug)."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(outage.message)
        self.outage = outage


def outage_of(exc: BaseException) -> Outage | None:
    """The outage ``exc`` reports, if it reports one (SQLAlchemy's wrappers or the drivers'
    own exceptions, which the hand-written SQL path raises unwrapped)."""
    if isinstance(exc, DatabaseUnavailable):
        return exc.outage
    orig = getattr(exc, "orig", None)
    if orig is not None and orig is not exc:
        found = outage_of(orig)
        if found is not None:
            return found
        if getattr(exc, "connection_invalidated", False):
            return Outage(False, _first_line(orig))
        return None
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(_SQLITE_DISK_FULL):
            return Outage(True, _first_line(exc))
        if name.startswith(_SQLITE_UNAVAILABLE):
            return Outage(False, _first_line(exc))
        return None
    return _pg_outage(exc)


def _pg_outage(exc: BaseException) -> Outage | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return None
    state = getattr(exc, "sqlstate", None)
    if state is None:
        # No answer from a server at all: refused, reset, closed.
        return Outage(False, _first_line(exc))
    if state in _PG_DISK_FULL:
        return Outage(True, _first_line(exc))
    if state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE:
        return Outage(False, _first_line(exc))
    return None


def report_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """For a catch-all ``except`` block: log the exception with its traceback, unless it is
    a database outage, which ``Availability`` tells once for all its failures."""
    exc = sys.exc_info()[1]
    if exc is not None and outage_of(exc) is not None:
        logger.debug(f"{message}: %s", *args, exc)
        return
    logger.exception(message, *args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class Availability:
    """The state of one database as this process sees it: fine, or in an outage since
    some time. Thread-safe; the transitions are logged, nothing in between."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._outage: Outage | None = None
        self._since = 0.0
        self._last_failure = 0.0
        self._last_success = 0.0
        self._recovered_at = 0.0
        self._settling: threading.Timer | None = None

    @property
    def outage(self) -> Outage | None:
        return self._outage

    def failed_since(self, monotonic: float) -> bool:
        """Whether a transaction failed for an outage at or after ``time.monotonic()`` was
        ``monotonic``: the engine counts no crash against a handler whose invocation
        overlapped an outage (its checkpoints failed for the database, not for itself)."""
        return self._last_failure >= monotonic

    def failed(self, exc: BaseException) -> DatabaseUnavailable | None:
        """Record a failed transaction; the exception to raise instead if it was an outage."""
        outage = outage_of(exc)
        if outage is None:
            return None
        with self._lock:
            self._last_failure = time.monotonic()
            current = self._outage
            if current is None or (outage.disk_full and not current.disk_full):
                self._outage = outage
                if current is None:
                    self._since = self._last_failure
                log.warning(
                    "%s: %s (%s)",
                    "the database's disk is full" if outage.disk_full else "the database is unavailable",
                    outage.detail,
                    self.name,
                )
        return DatabaseUnavailable(outage)

    def succeeded(self, wrote: bool) -> None:
        """A transaction committed (``wrote``) or a read succeeded."""
        outage = self._outage
        if outage is None or (outage.disk_full and not wrote):
            return
        with self._lock:
            if self._outage is None:
                return
            now = time.monotonic()
            if self._last_success <= self._last_failure:
                self._recovered_at = now
            self._last_success = now
            if self._settling is None:
                self._settle_in(self._last_failure + SETTLE_SECONDS - now)

    def _settle_in(self, seconds: float) -> None:
        # Under the lock. A timer, not the next success: the outage's end is told on time
        # even when nothing else happens.
        self._settling = threading.Timer(max(seconds, 0.0), self._settle)
        self._settling.daemon = True
        self._settling.start()

    def _settle(self) -> None:
        with self._lock:
            self._settling = None
            if self._outage is None or self._last_success <= self._last_failure:
                return  # it failed again since: the next success starts over
            remaining = self._last_failure + SETTLE_SECONDS - time.monotonic()
            if remaining > 0:
                self._settle_in(remaining)
                return
            self._outage = None
            log.warning(
                "the database is available again after %.1f s (%s)", self._recovered_at - self._since, self.name
            )
