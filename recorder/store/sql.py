"""Hand-written SQL on the DBAPI connection of a SQLAlchemy transaction.

Measured on this project's hot path: SQLAlchemy Core spends ~150 us of Python per
statement around a SQLite lookup that takes ~45 us, and a checkpoint runs six to
eight statements. So the control plane's write path (``Workset`` and the append)
runs its few fixed statements straight on the driver connection. SQLAlchemy still
owns the pool, the transaction (BEGIN IMMEDIATE on SQLite, commit, rollback) and the
schema; this module only adapts one SQL text to each driver's parameter style.

SQL here is written with ``:name`` parameters and must work on SQLite and PostgreSQL
alike (no ``::`` casts, no ``%``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
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
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            rows: list[Sequence[Any]] = cur.fetchall()
            return rows
        finally:
            cur.close()

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Any] | None:
        cur = self._driver.cursor()
        try:
            cur.execute(self._sql(sql), params or {})
            row: Sequence[Any] | None = cur.fetchone()
            return row
        finally:
            cur.close()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> int:
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
        """Statements run inside travel together: PostgreSQL's pipeline mode sends them
        without waiting for each answer and reads the answers at the end of the block (a
        checkpoint's five to eight writes in one round trip instead of one each; a round
        trip costs 0.2 to 0.4 ms on this project's machines). A result read inside the
        block waits for everything sent before it; ``run``'s row count is not known inside;
        an error surfaces by the block's end at the latest. On SQLite, or a libpq without
        pipeline mode, statements simply run in turn."""
        if self.postgres and _pipeline_supported():
            with self._driver.pipeline():
                yield
        else:
            yield

    def many(self, sql: str, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        cur = self._driver.cursor()
        try:
            if len(rows) == 1:
                cur.execute(self._sql(sql), rows[0])
            else:
                cur.executemany(self._sql(sql), rows)
        finally:
            cur.close()


@cache
def _pipeline_supported() -> bool:
    import psycopg

    return psycopg.Pipeline.is_supported()


def placeholders(prefix: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    """``:p0, :p1, ...`` for an IN list, adding the values to ``params``."""
    names = []
    for i, value in enumerate(values):
        name = f"{prefix}{i}"
        params[name] = value
        names.append(f":{name}")
    return ", ".join(names)
