"""Throwaway stores for the benchmarks: a fresh SQLite file, or a fresh PostgreSQL database
on the server ``DURASCOPE_BENCH_PG`` names (its ``test`` database by default, through which
databases are created and dropped), removed afterwards."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_ADMIN = os.environ.get("DURASCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def create_pg(prefix: str, admin: str = PG_ADMIN) -> tuple[str, str]:
    """A new empty database on the server of ``admin`` (a libpq URL of a database there):
    its name and its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
    return name, url.render_as_string(hide_password=False)


def drop_pg(name: str, admin: str = PG_ADMIN) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_of(admin: str = PG_ADMIN) -> str:
    """``user@host:port`` of the server of ``admin`` (the form of ``run.py --pg-server``)."""
    url = make_url(admin)
    password = f":{url.password}" if url.password else ""
    return f"{url.username}{password}@{url.host or '127.0.0.1'}:{url.port or 5432}"


def admin_of(server: str) -> str:
    """The libpq URL of the ``test`` database on ``user@host:port``."""
    return f"postgresql://{server}/test"


def sqlite_url(prefix: str) -> str:
    """A SQLite file that does not exist yet, in a new temporary folder."""
    return f"sqlite:///{tempfile.mkdtemp(prefix=f'{prefix}-')}/bench.db"


def remove_sqlite(url: str) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass  # not the empty folder sqlite_url made


@contextmanager
def scratch_url(db: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """The URL of a fresh store, ``db`` being ``sqlite`` or ``postgresql``; removed on the way
    out unless ``keep``."""
    if db == "sqlite":
        url = sqlite_url(prefix)
        try:
            yield url
        finally:
            if not keep:
                remove_sqlite(url)
        return
    if db != "postgresql":
        raise ValueError(f"unknown database {db!r}: sqlite or postgresql")
    name, url = create_pg(prefix)
    try:
        yield url
    finally:
        if not keep:
            drop_pg(name)
