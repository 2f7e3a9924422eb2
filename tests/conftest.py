"""Fixtures: every store test runs on a SQLite file and on a real PostgreSQL database.

PostgreSQL: the server of the machine (``DURASCOPE_TEST_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). One migrated template database is
made per test session; each test gets a fresh copy (CREATE DATABASE ... TEMPLATE),
dropped afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from recorder.api import Durascope
from recorder.config import Settings
from recorder.store.db import Database

HANDLERS = str(Path(__file__).parent / "handlers")
PG_URL = os.environ.get("DURASCOPE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def pg_connect(database_url: str = PG_URL, autocommit: bool = False) -> psycopg.Connection:
    """A plain psycopg connection to a database given by its SQLAlchemy URL."""
    url = make_url(database_url)
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        dbname=url.database,
        password=url.password,
        autocommit=autocommit,
    )


def _pg_admin() -> psycopg.Connection:
    return pg_connect(PG_URL, autocommit=True)


def pg_database_url(name: str) -> str:
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def create_pg_database(template: str | None = None) -> str:
    name = f"dura_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_pg_database(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = create_pg_database()
    db = Database(pg_database_url(name))
    db.upgrade()
    db.dispose()
    yield name
    drop_pg_database(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (a copy of the template), dropped afterwards."""
    name = create_pg_database(pg_template)
    try:
        yield pg_database_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/durascope.db"
        return
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def ds(database_url: str) -> Iterator[Durascope]:
    d = Durascope.open(database_url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def control_only(database_url: str) -> Iterator[Durascope]:
    """A store and control plane with no engine: tests drive invocations by hand."""
    d = Durascope.open(database_url, run_engine=False)
    try:
        yield d
    finally:
        d.close()


def register(d: Durascope, name: str, handler: str, **kw: object) -> None:
    d.register_function(name, handler, code_dir=HANDLERS, **kw)


def submit_form(client: Any, page: str, action: str, data: dict[str, str] | None = None) -> Any:
    """POST a form the way a browser does: with the CSRF token of the page that shows it."""
    body = client.get(page).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert m, f"{page} has no form with a CSRF token"
    return client.post(action, data={**(data or {}), "csrf_token": m.group(1)})


@contextmanager
def running_server(settings: Settings, **kw: Any) -> Iterator[tuple[Any, Durascope]]:
    """``durascope serve``'s server on a free loopback port, serving in a thread; closed after."""
    from viewer.server import build_server

    server, d = build_server(settings, port=0, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server, d
    finally:
        server.shutdown()
        server.server_close()
        d.close()


def worker_argv(engine_url: str, function: str, *options: str) -> list[str]:
    """``durascope worker`` serving one function with one runtime, as a remote host runs it."""
    return [
        sys.executable,
        "-m",
        "recorder.cli",
        "worker",
        "--engine",
        engine_url,
        *options,
        "--function",
        function,
        "--concurrency",
        "1",
    ]


@contextmanager
def remote_worker(
    engine_url: str, function: str, *options: str, log: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``durascope worker`` process (``worker_argv``), its output in ``log``; stopped after."""
    with open(log if log is not None else os.devnull, "wb") as out:
        worker = subprocess.Popen(
            worker_argv(engine_url, function, *options), env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield worker
        finally:
            worker.terminate()
            worker.wait(30)
