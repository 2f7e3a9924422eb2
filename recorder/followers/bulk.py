"""One statement for many rows, on both databases: the rows travel as one JSON document.

``executemany`` runs one statement per row. On PostgreSQL psycopg pipelines them, but each
row is still converted, bound and executed on its own (34 ms of client CPU per 1,000
delivery rows; ``unnest`` of one array per column was worse, 60 ms, because psycopg
quotes text array elements in Python). On SQLite every row is a ``sqlite3_step`` that
releases and re-takes the GIL, and with the sending threads busy each re-take waits its
turn: a 256-row record step took 150 ms of wall time for 5 ms of work.

Here the rows are encoded once by the C ``json`` encoder and expanded by the database,
``json_to_recordset`` on PostgreSQL and ``json_each`` on SQLite, in one statement whose
text never changes (one prepared plan; 10 ms per 1,000 rows on PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, TextClause, text
from sqlalchemy.dialects import postgresql

_PG = postgresql.dialect()
_statements: dict[tuple[str, str, str, tuple[str, ...]], TextClause] = {}


def _columns(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    cols = tuple(rows[0])
    if any(tuple(r) != cols for r in rows):
        raise ValueError("bulk rows must all have the same keys in the same order")
    return cols


def _source(dialect: str, table: Table, cols: Sequence[str]) -> str:
    """A FROM item ``v`` with one row per JSON object and one column per key."""
    if dialect == "postgresql":
        typed = ", ".join(f"{c} {table.c[c].type.compile(dialect=_PG)}" for c in cols)
        return f"json_to_recordset(CAST(:rows AS json)) AS v({typed})"
    picked = ", ".join(f"json_extract(value, '$.{c}') AS {c}" for c in cols)
    return f"(SELECT {picked} FROM json_each(:rows)) AS v"


def _run(
    conn: Connection, kind: str, table: Table, cols: tuple[str, ...], build: Any, rows: Sequence[Mapping[str, Any]]
) -> None:
    key = (kind, conn.dialect.name, table.name, cols)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = text(build(_source(conn.dialect.name, table, cols)))
    conn.execute(stmt, {"rows": json.dumps(list(rows), separators=(",", ":"))})


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT every row (dicts with the same keys) in one statement."""
    if not rows:
        return
    cols = _columns(rows)
    names = ", ".join(cols)
    _run(conn, "insert", table, cols, lambda src: f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {src}", rows)


def update_rows(conn: Connection, table: Table, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE the row ``row[key]`` of every dict, setting the dict's other keys; one statement."""
    if not rows:
        return
    cols = _columns(rows)
    if key not in cols:
        raise ValueError(f"bulk update rows need the key column {key!r}")
    assign = ", ".join(f"{c} = v.{c}" for c in cols if c != key)
    _run(
        conn,
        "update",
        table,
        cols,
        lambda src: f"UPDATE {table.name} SET {assign} FROM {src} WHERE {table.name}.{key} = v.{key}",
        rows,
    )
