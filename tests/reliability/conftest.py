"""Generic helpers of the fault tests: restarting PostgreSQL, a small tmpfs, and checking
that no process a test started outlives it.

Processes are found by a tag in their environment (``TAG_VARIABLE``): a test puts it in
the environment of the engine it starts and of the functions it registers (worker
runtimes see only their function's variables), so every process of the test carries it,
wherever the kernel re-parented it after a kill.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from recorder.api import wait_until
from tests.conftest import PG_URL
from tests.webhook_receiver import Receiver

TAG_VARIABLE = "DURASCOPE_TEST_PROCESS_TAG"
# Restarts of the machine's PostgreSQL are serialized across test processes.
_PG_LOCK = Path("/tmp/durascope-reliability-pg.lock")


def tagged_processes(tag: str) -> list[int]:
    """Live processes whose environment carries ``TAG_VARIABLE=tag`` (zombies have none)."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


@pytest.fixture
def process_tag() -> Iterator[str]:
    """A tag for the processes of one test; none of them may be alive when it ends."""
    tag = uuid.uuid4().hex
    yield tag
    survivors = tagged_processes(tag)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not survivors, f"processes outlived the test: {survivors}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (``tests/webhook_receiver.py``)."""
    r = Receiver()
    yield r
    r.release()
    if r.server is not None:
        r.down()


def wait_for_no_process(tag: str, within: float, what: str) -> None:
    wait_until(lambda: not tagged_processes(tag), within, f"{what}: {tagged_processes(tag)} still alive")


# --- PostgreSQL -------------------------------------------------------------------------


def _cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def _pg_ready() -> bool:
    url = make_url(PG_URL)
    try:
        with psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, dbname=url.database, connect_timeout=2
        ):
            return True
    except psycopg.OperationalError:
        return False


def _pg_started_ms() -> float:
    url = make_url(PG_URL)
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database) as conn:
        row = conn.execute("SELECT extract(epoch FROM pg_postmaster_start_time()) * 1000").fetchone()
    assert row is not None
    return float(row[0])


@dataclass
class Outage:
    """When the block of ``postgresql_stopped`` had PostgreSQL stopped, and when the server
    started again (``pg_postmaster_start_time``; epoch ms)."""

    stopped_ms: float = 0.0
    back_ms: float = 0.0


@contextmanager
def postgresql_stopped() -> Iterator[Outage]:
    """The machine's PostgreSQL is down inside the block, and accepts connections again
    after it. Other suites may be using it: keep the block short."""
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"):
        pytest.skip("restarting the local PostgreSQL needs root and pg_ctlcluster")
    outage = Outage()
    with _PG_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([*_cluster(), "stop", "-m", "fast"], check=True, capture_output=True, timeout=60)
        outage.stopped_ms = time.time() * 1000
        try:
            yield outage
        finally:
            subprocess.run([*_cluster(), "start"], check=True, capture_output=True, timeout=60)
            wait_until(_pg_ready, 60, "PostgreSQL did not accept connections after its restart")
            outage.back_ms = _pg_started_ms()


def restart_postgresql() -> None:
    with postgresql_stopped():
        pass


# --- a small file system ------------------------------------------------------------------


@contextmanager
def small_tmpfs(size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted on a fresh directory."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(f"/tmp/durascope-tmpfs-{uuid.uuid4().hex[:8]}")
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)], check=True, capture_output=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        where.rmdir()


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; the filler file is returned
    (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 4096, 1):
            block = b"\0" * size
            try:
                while os.write(fd, block):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


# --- a served engine in a process of its own ------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``durascope serve`` in a process of its own (so it can be SIGKILLed)."""

    def __init__(self, database_url: str, tag: str, log: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environ = {**os.environ, "DURASCOPE_DATABASE_URL": database_url, TAG_VARIABLE: tag, **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--port", str(self.port), *args],
            env=environ,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_until(self._up, 60, f"serve did not start: {self.tail()}")

    def _up(self) -> bool:
        import http.client

        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}: {self.tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/2015-03-31/functions/none/invocations")
            conn.getresponse().read()
            return True
        except OSError:
            return False

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
