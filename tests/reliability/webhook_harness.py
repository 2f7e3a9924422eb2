"""Helpers of the webhook fault tests: ``durascope serve`` in a process of its own, and the
check that no process a test started outlives it (found by a tag in its environment,
wherever the kernel re-parented it after a kill)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.api import wait_until

TAG_VARIABLE = "DURASCOPE_TEST_PROCESS_TAG"
ROOT = Path(__file__).resolve().parents[2]


def tagged_processes(tag: str) -> list[int]:
    """Live processes whose environment carries ``TAG_VARIABLE=tag``."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
        except OSError:
            continue
    return found


@contextmanager
def no_survivors() -> Iterator[str]:
    """A tag for the processes of one test; none may be alive when the block ends."""
    tag = uuid.uuid4().hex
    yield tag
    survivors = tagged_processes(tag)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes outlived the test: {survivors}"


class Served:
    """``durascope serve --invoker in-process`` (engine and webhook dispatcher) in a process
    of its own, so that it can be SIGKILLed."""

    def __init__(self, database_url: str, tag: str, log: Path, **env: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = log
        environ = {**os.environ, "DURASCOPE_DATABASE_URL": database_url, TAG_VARIABLE: tag,
                   "PYTHONPATH": str(ROOT), **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--invoker", "in-process", "--port", str(self.port)],
            env=environ, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._up, 60, f"serve did not start: {self.tail()}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}: {self.tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/api/v1/webhooks")
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
