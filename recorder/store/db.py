"""Connections, transactions and the schema check.

Writers are serialized per execution by row locks and, for the global log position,
by one lock for every append (see ``recorder.store.log``). On SQLite the database
file is itself the lock: write transactions start with ``BEGIN IMMEDIATE`` so two
writers never deadlock upgrading a read lock, and a process-local mutex keeps this
process's threads from spinning on ``SQLITE_BUSY``. Reads use a second engine that
begins deferred transactions, so in WAL mode they never wait for a writer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from recorder.store.availability import Availability
from recorder.store.sql import Raw
from recorder.store.walcheck import WalCheckpointer

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class SchemaOutdated(RuntimeError):
    pass


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    if immediate:
        # Writers are serialized by the process mutex, so one connection serves them
        # all; no pool checkout or reset-on-return per transaction.
        eng = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            poolclass=StaticPool,
            pool_reset_on_return=None,
        )
    else:
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=64, max_overflow=0)

    @event.listens_for(eng, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        if immediate:
            # The writer leaves WAL checkpoints to recorder.store.walcheck's thread.
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(eng, "begin")
    def _on_begin(conn: Any) -> None:  # a Connection, whose driver connection exists while it begins
        conn.connection.driver_connection.execute(begin)

    return eng


class Database:
    """One store: a SQLite file or a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        # Transactions that fail because the database cannot be used now raise
        # DatabaseUnavailable, and the outage is logged once (recorder.store.availability).
        self.availability = Availability(parsed.render_as_string(hide_password=True))
        self._writer: Connection | None = None
        self._wal_path: str | None = None
        self.wal_checkpointer: WalCheckpointer | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                self._wal_path = parsed.database
            self.engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
            self._write_mutex: threading.Lock | None = threading.Lock()
        elif self.dialect == "postgresql":
            # Connections are held only for a transaction, so a few serve many invocation
            # threads; several engines (and their tools) must fit in max_connections (100 by
            # default) together.
            # No pre-ping: it cost a round trip per transaction. After a server restart the
            # first transaction on a dropped connection fails once; its rollback, which goes
            # through SQLAlchemy, detects the disconnect and replaces the whole pool (the
            # engine retries that work on its next sweep).
            size = int(os.environ.get("DURASCOPE_PG_POOL_SIZE", "8"))
            self.engine = create_engine(url, pool_size=size, max_overflow=size, pool_timeout=60)
            self.read_engine = self.engine
            self._write_mutex = None
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLAlchemy Core): commits on success, rolls back on any exception."""
        mutex = self._write_mutex
        try:
            if mutex is None:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with mutex:
                    # SQLite: one writer connection, kept open. Opening a Connection per
                    # transaction (checkout, events, reset) cost 60 us of a 90 us empty write.
                    if self._writer is None or self._writer.closed:
                        self._writer = self.engine.connect()
                        if self._wal_path is not None and self.wal_checkpointer is None:
                            self.wal_checkpointer = WalCheckpointer(self._wal_path, mutex)
                    with self._writer.begin():
                        yield self._writer
                    if self.wal_checkpointer is not None:
                        self.wal_checkpointer.committed()
        except Exception as exc:  # noqa: BLE001 - _reraise raises it again, through the availability tracker
            self._reraise(exc)
        self.availability.succeeded(wrote=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with Session(self.read_engine, expire_on_commit=False, autoflush=False) as session:
                with session.begin():
                    yield session
        except Exception as exc:  # noqa: BLE001 - _reraise raises it again, through the availability tracker
            self._reraise(exc)
        self.availability.succeeded(wrote=False)

    @contextmanager
    def read_raw(self) -> Iterator[Raw]:
        """A read transaction for hand-written SQL (``recorder.store.sql``): for reads
        that run often, such as polling an execution's status, where the ORM session
        costs ten times the query."""
        try:
            with self.read_engine.begin() as conn:
                yield Raw(conn)
        except Exception as exc:  # noqa: BLE001 - _reraise raises it again, through the availability tracker
            self._reraise(exc)
        self.availability.succeeded(wrote=False)

    def _reraise(self, exc: Exception) -> NoReturn:
        """Every failure goes past the availability tracker: one that means the database is
        unavailable comes back as ``DatabaseUnavailable`` (a 503), anything else as it was."""
        unavailable = self.availability.failed(exc)
        if unavailable is None:
            raise exc
        raise unavailable from exc

    def dispose(self) -> None:
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.close()
            self.wal_checkpointer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    # --- schema -----------------------------------------------------------------

    def alembic_config(self) -> Config:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["database"] = self
        return cfg

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.read_engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
            conn.rollback()
            return rev

    def upgrade(self) -> None:
        from alembic import command

        command.upgrade(self.alembic_config(), "head")

    def check_schema(self, auto_upgrade: bool) -> None:
        """Refuse to run on an out-of-date schema; the SQLite default may upgrade itself."""
        current = self.current_revision()
        head = self.head_revision()
        if current == head:
            return
        if auto_upgrade and (self.is_sqlite or current is None):
            self.upgrade()
            return
        shown = make_url(self.url).render_as_string(hide_password=True)
        raise SchemaOutdated(
            f"the database schema is at revision {current or 'none'}, this Durascope needs {head}: "
            f"run `durascope db upgrade` (DURASCOPE_DATABASE_URL={shown})"
        )
