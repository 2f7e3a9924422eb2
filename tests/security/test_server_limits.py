"""Nothing before authentication costs the server much: the request head has a deadline,
connections and event streams are capped, and open streams share one reader of the log.

Before: werkzeug's threaded server gave each connection a thread with a 120-second timeout
per read (a head sent a byte at a time held it forever), accepted connections without
limit, and every SSE stream queried the database every 100 ms. A body over the route's
limit is refused by its Content-Length without being read: tests/security/
test_signed_bodies.py (``test_nothing_is_read_before_the_header_is_checked``).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import event

from recorder.api import Durascope, wait_until
from recorder.config import Settings
from tests.conftest import HANDLERS, running_server
from viewer import create_app
from viewer.wsgiserver import ServerLimits, WSGIServer


@dataclass(frozen=True)
class Served:
    server: WSGIServer
    ds: Durascope

    @property
    def port(self) -> int:
        return self.server.server_port

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(source, 0))


@contextmanager
def served(database_url: str, poll_seconds: float = 0.1, **settings: object) -> Iterator[Served]:
    ds = Durascope.open(database_url, run_engine=False, **settings)
    try:
        ds.register_function("add-one", "th_basic:add_one", code_dir=HANDLERS)
        app = create_app(ds.settings, durascope=ds, DURASCOPE_FEED_POLL_SECONDS=poll_seconds)
        server = WSGIServer(app, limits=ServerLimits.from_settings(ds.settings))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Served(server, ds)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
    finally:
        ds.close()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def open_stream(s: Served, query: str = "", source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A feed request; returns the socket and what arrived up to the stream's first line
    (or the whole refusal)."""
    sock = s.connect(source)
    sock.sendall(f"GET /api/v1/feed{query} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
    data = read_head(sock)
    if data.startswith(b"HTTP/1.1 200"):
        while b"retry: 2000" not in data:
            data += sock.recv(65536)
    return sock, data


def test_a_head_sent_a_byte_at_a_time_is_cut_off(database_url: str) -> None:
    settings = Settings.from_env(database_url=database_url, head_timeout_seconds=1.0)
    with running_server(settings, run_engine=False) as (server, _):
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(b"GET /api/v1/status-changes HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            header = b"X-Slow: " + b"a" * 400
            answer = b""
            # Each byte comes well within any per-read timeout; the head never completes.
            for byte in header:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable:
                    answer = sock.recv(65536)
                    break
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    break  # cut while sending
            else:
                pytest.fail("the server kept reading a request head that trickled in for 40 seconds")
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
        wait_until(lambda: server.open_connections == 0, 10, "the cut connection was not released")


def test_a_connection_past_the_cap_is_answered_503(database_url: str) -> None:
    with served(database_url, max_connections=3) as s:
        kept = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=10) for _ in range(3)]
        for conn in kept:  # three kept-alive connections, idle after one request each
            conn.request("GET", "/api/v1/status-changes")
            assert conn.getresponse().read() and conn.sock is not None
        assert s.server.open_connections == 3
        with s.connect() as sock:
            sock.sendall(f"GET /api/v1/status-changes HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
            data = read_head(sock)
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
        assert "DURASCOPE_MAX_CONNECTIONS=3" in json.loads(body)["message"]
        # The kept connections still work, and a closed one makes room.
        kept[0].request("GET", "/api/v1/status-changes")
        assert kept[0].getresponse().status == 200
        kept[1].close()
        wait_until(lambda: s.server.open_connections == 2, 10, "the closed connection was not released")
        fresh = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        fresh.request("GET", "/api/v1/status-changes")
        assert fresh.getresponse().status == 200
        for conn in (kept[0], kept[2], fresh):
            conn.close()


def test_a_refused_body_sent_anyway_still_gets_its_answer(database_url: str) -> None:
    """Refused by its Content-Length before a byte is read; a client that sends the body
    anyway (http.client sends it all before reading) reads the 413, not a reset."""
    with served(database_url) as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        conn.request(
            "POST", "/api/v1/webhooks", body=b"x" * (3 * 1024 * 1024), headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        assert resp.status == 413 and "at most" in json.loads(resp.read())["error"]["message"]
        conn.close()


def test_streams_are_capped_per_client_and_in_total(database_url: str) -> None:
    with served(database_url, max_streams=3, max_streams_per_client=2) as s:
        first, ok1 = open_stream(s)
        second, ok2 = open_stream(s)
        assert ok1.startswith(b"HTTP/1.1 200") and ok2.startswith(b"HTTP/1.1 200")
        third, refused = open_stream(s)
        assert refused.startswith(b"HTTP/1.1 429") and b"TooManyRequestsException" in refused
        third.close()
        other, ok3 = open_stream(s, source="127.0.0.2")  # another client
        assert ok3.startswith(b"HTTP/1.1 200")
        fourth, full = open_stream(s, source="127.0.0.3")
        assert full.startswith(b"HTTP/1.1 503") and b"ServiceUnavailableException" in full
        fourth.close()
        # A stream that ends gives its slot back.
        ending, ok4 = None, b""
        first.close()
        second.close()
        other.close()

        def slot_free() -> bool:
            nonlocal ending, ok4
            sock, data = open_stream(s, "?wait=0", source="127.0.0.3")
            if data.startswith(b"HTTP/1.1 200"):
                ending, ok4 = sock, data
                return True
            sock.close()
            return False

        # Closed streams are noticed at their next write: a status change makes one.
        s.ds.control.start_execution("add-one", '{"a": 1}')
        wait_until(slot_free, 30, "closed streams did not give their slots back")
        assert ending is not None
        ending.close()


def _count_log_reads(ds: Durascope) -> list[str]:
    seen: list[str] = []
    engines = {id(e): e for e in (ds.db.engine, ds.db.read_engine)}.values()

    def before(conn, cursor, statement, parameters, context, executemany):
        if "FROM events" in statement:
            seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    return seen


def test_open_streams_share_one_reader_of_the_log(database_url: str) -> None:
    poll = 0.05
    with served(database_url, poll_seconds=poll) as s:
        streams = [open_stream(s, "?function=add-one")[0] for _ in range(8)]
        seen = _count_log_reads(s.ds)
        started = time.monotonic()
        wait_until(lambda: len(seen) >= 40, 30, "the feed did not read the log")
        elapsed = time.monotonic() - started
        reads = len(seen)
        # One reader: a head query and a read of what follows it per interval, whatever the
        # number of streams (eight streams polling on their own: eight times as many).
        assert reads <= 2 * (elapsed / poll + 3), f"{reads} reads of the log in {elapsed:.2f} s"
        arn = s.ds.control.start_execution("add-one", '{"a": 1}').arn
        for sock in streams:  # every stream gets the change
            data = b""
            while arn.encode() not in data:
                data += sock.recv(65536)
            assert b"event: status-change" in data
            sock.close()
