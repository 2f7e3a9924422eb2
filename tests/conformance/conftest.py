"""Fixtures for the conformance suite.

``durascope`` is session-scoped and parametrized over the backends in
``$DURASCOPE_CONFORMANCE_BACKENDS`` (default ``sqlite,postgresql``; ``reference``
adds the official in-memory test backend, useful to tell handler mistakes from
engine discrepancies). Each backend gets a :class:`Campaign` that registers every
handler once and runs the selected requirements concurrently on a thread pool;
each test then only collects its own outcome.

PostgreSQL: a fresh database ``dura_conf_<random>`` is created on
``$DURASCOPE_CONFORMANCE_PG_ADMIN_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import driver  # noqa: E402 - after sys.path gains this directory
from requirements import Requirement, load_requirements  # noqa: E402 - after sys.path gains this directory

PG_ADMIN_URL = os.environ.get("DURASCOPE_CONFORMANCE_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [
    b.strip() for b in os.environ.get("DURASCOPE_CONFORMANCE_BACKENDS", "sqlite,postgresql").split(",") if b.strip()
]
WORKERS = int(os.environ.get("DURASCOPE_CONFORMANCE_WORKERS", "16"))
DEADLINE_SECONDS = float(os.environ.get("DURASCOPE_CONFORMANCE_DEADLINE", "240"))
REPORT_DIR = Path(os.environ.get("DURASCOPE_CONFORMANCE_REPORT_DIR", "test-artifacts/conformance"))


class Cancelled(Exception):
    """The session is ending; abandon the running requirement."""


class Campaign:
    """All requirement runs against one backend."""

    def __init__(self, backend: Any, log_dir: Path, requirements: list[Requirement]) -> None:
        self.backend = backend
        self.log_dir = log_dir
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix=f"conf-{backend.name}")
        for req in requirements:
            backend.register(driver.function_name(req), driver.handler_target(req))
        for name, target in driver.invoke_targets().items():
            backend.register(name, target)
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        self._report = (REPORT_DIR / f"{backend.name}.jsonl").open("w", encoding="utf-8")

    def _sleep(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise Cancelled

    def _run(self, req: Requirement) -> driver.Outcome:
        if self._closing.is_set():
            raise Cancelled
        out = driver.run_requirement(
            self.backend, req, str(self.log_dir), deadline_seconds=DEADLINE_SECONDS, sleep=self._sleep
        )
        with self._lock:
            self._report.write(
                json.dumps(
                    {
                        "key": out.key,
                        "backend": out.backend,
                        "passed": out.passed,
                        "seconds": round(out.seconds, 2),
                        "arn": out.arn,
                        "errors": out.errors,
                        "status": out.status,
                        "events": out.events,
                    },
                    default=str,
                )
                + "\n"
            )
            self._report.flush()
        return out

    def submit(self, req: Requirement) -> concurrent.futures.Future:
        with self._lock:
            fut = self._futures.get(req.key)
            if fut is None:
                fut = self._pool.submit(self._run, req)
                self._futures[req.key] = fut
            return fut

    def outcome(self, req: Requirement) -> driver.Outcome:
        return self.submit(req).result(timeout=DEADLINE_SECONDS + 120)

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._report.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which requirements were selected (after -k/-m deselection), per
    backend, so a campaign can start all of them at once instead of one by one."""
    selected: dict[str, list[Requirement]] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "req" not in callspec.params:
            continue
        backend = callspec.params.get("durascope")
        req = callspec.params["req"]
        selected.setdefault(backend, []).append(req)
    session.config.stash[_SELECTED] = selected


_SELECTED = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def _handler_env(tmp_path_factory: pytest.TempPathFactory):
    log_dir = tmp_path_factory.mktemp("conformance-logs")
    saved = {k: os.environ.get(k) for k in ("DURASCOPE_CONF_LOG_DIR", "DURASCOPE_CONF_MAIN_PID")}
    os.environ["DURASCOPE_CONF_LOG_DIR"] = str(log_dir)
    os.environ["DURASCOPE_CONF_MAIN_PID"] = str(os.getpid())
    yield log_dir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"dura_conf_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def durascope(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _handler_env: Path):
    """A :class:`Campaign` running requirements against one backend."""
    kind: str = request.param
    cleanup = []
    if kind == "reference":
        backend = driver.ReferenceBackend()
        cleanup.append(backend.close)
    else:
        from recorder.api import Durascope

        if kind == "sqlite":
            db_dir = tmp_path_factory.mktemp("sqlite")
            url = f"sqlite:///{db_dir}/t.db"
        elif kind == "postgresql":
            try:
                db_name, url = _create_pg_database()
            except Exception as err:  # noqa: BLE001 - any failure to reach the server is a skip with its reason
                pytest.skip(f"PostgreSQL not available at {PG_ADMIN_URL}: {err}")
            cleanup.append(lambda: _drop_pg_database(db_name))
        else:
            pytest.fail(f"unknown conformance backend {kind!r}")
        ds = Durascope.open(url)
        cleanup.insert(0, ds.close)
        backend = driver.DurascopeBackend(ds, kind)
    selected = request.config.stash.get(_SELECTED, {}).get(kind, [])
    campaign = Campaign(backend, _handler_env, load_requirements())
    for req in selected:
        campaign.submit(req)
    try:
        yield campaign
    finally:
        campaign.close()
        for fn in cleanup:
            fn()
