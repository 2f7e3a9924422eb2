"""Hand-written SQL on the DBAPI connection of a SQLAlchemy transaction.

Measured on this project's hot path: SQLAlchemy Core spends ~150 us of Python per
statement around a SQLite lookup that takes ~45 us, and a checkpoint runs six to
eight statements. So the control plane's write path (``Workset`` and the append)
runs its few fixed statements straight on the driver connection. SQLAlchemy still
owns the pool, the transaction (BEGIN IMMEDIATE on SQLite, commit, rollback) and the
schema; this module only adapts one SQL text to each driver's parameter style.

SQL here is written with ``:name`` parameters and must work on SQLite and PostgreSQL
alike (no ``::`` casts, no ``%``).

On PostgreSQL a ``batch`` sends its statements as one text (each bound on the client by
psycopg's ``ClientCursor.mogrify``, which quotes every value as a literal) in one round
trip. It replaced pipeline mode, which also took one round trip but cost psycopg ~40 us of
Python per statement: a checkpoint's transaction went from 0.84 to 0.70 ms of CPU
(``bench/workers_bench.py`` W4 on PostgreSQL: 10.2 to 9.5 ms of engine CPU an execution).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class Raw:
    """Run SQL text on the driver connection under the caller's transaction."""

    _converted: dict[tuple[str, str], str] = {}

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.postgres = self.dialect == "postgresql"
        driver = conn.connection.driver_connection
        assert driver is not None  # a connection in use always has its DBAPI connection
        self._driver: Any = driver
        # Inside a PostgreSQL ``batch``: the statements bound so far, not yet sent.
        self._pending: list[bytes] | None = None
        self._binder: Any = None

    def _sql(self, sql: str) -> str:
        if not self.postgres:
            return sql
        key = (sql, self.dialect)
        converted = self._converted.get(key)
        if converted is None:
            converted = _NAMED.sub(r"%(\1)s", sql)
            self._converted[key] = converted
        return converted

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        if self._pending is not None:
            return self._send(sql, params or {})
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            rows: list[Sequence[Any]] = cur.fetchall()
            return rows
        finally:
            cur.close()

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Any] | None:
        if self._pending is not None:
            rows = self._send(sql, params or {})
            return rows[0] if rows else None
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            row: Sequence[Any] | None = cur.fetchone()
            return row
        finally:
            cur.close()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """The statement's row count; -1 inside a PostgreSQL ``batch`` (not known there)."""
        if self._pending is not None:
            self._pending.append(self._bound(sql, params or {}))
            return -1
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            count: int = cur.rowcount
            return count
        finally:
            cur.close()

    def insert(self, sql: str, params: dict[str, Any]) -> int:
        """SQLite: a one-row INSERT, returning the row's rowid (the driver's ``lastrowid``,
        which spares a ``SELECT last_insert_rowid()``)."""
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params)
            rowid: int = cur.lastrowid
            return rowid
        finally:
            cur.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Statements run inside travel together: on PostgreSQL they are held and sent as
        one text at the block's end, or with the first statement whose result is read
        (``one``/``all``, which answer that statement's rows). A round trip costs 0.2 to
        0.4 ms on this project's machines, and a checkpoint writes five to eight times.
        ``run``'s row count is not known inside; an error surfaces by the block's end at
        the latest. On SQLite statements simply run in turn."""
        if not self.postgres or self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
            if self._pending:
                self._send(None, {})
        finally:
            self._pending = None

    def _bound(self, sql: str, params: dict[str, Any]) -> bytes:
        """One statement with its values quoted in (psycopg's client-side binding)."""
        if self._binder is None:
            import psycopg

            self._binder = psycopg.ClientCursor(self._driver)
        text: str = self._binder.mogrify(self._sql(sql), params)
        return text.encode()

    def _send(self, sql: str | None, params: dict[str, Any]) -> list[Sequence[Any]]:
        """Send the held statements, and ``sql`` last; its rows."""
        assert self._pending is not None
        texts = self._pending
        if sql is not None:
            texts.append(self._bound(sql, params))
        self._pending = []
        cur = self._driver.cursor()
        try:
            # Without parameters psycopg uses the simple query protocol, which takes
            # several statements in one text; the last one's result is what is read.
            cur.execute(b";\n".join(texts), prepare=False)
            while cur.nextset():
                pass
            rows: list[Sequence[Any]] = cur.fetchall() if sql is not None else []
            return rows
        finally:
            cur.close()

    def many(self, sql: str, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if self._pending is not None:
            self._pending.extend(self._bound(sql, r) for r in rows)
            return
        cur = self._driver.cursor()
        try:
            if len(rows) == 1:
                cur.execute(self._sql(sql), rows[0])
            else:
                cur.executemany(self._sql(sql), rows)
        finally:
            cur.close()


def placeholders(prefix: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    """``:p0, :p1, ...`` for an IN list, adding the values to ``params``."""
    names = []
    for i, value in enumerate(values):
        name = f"{prefix}{i}"
        params[name] = value
        names.append(f":{name}")
    return ", ".join(names)
