"""Kept-alive HTTP connections to one engine, one per thread (what a worker host uses).

``urllib.request.urlopen`` opens and closes a TCP connection for every call: three a
invocation for a remote worker (next, response, logs), each also costing the engine an
accept and a thread. Each runtime slot's relay thread keeps its own
``http.client`` connection instead (the engine's server keeps HTTP/1.1 connections open,
``viewer.wsgiserver``).

A kept-alive connection can have been closed by the server while idle (its idle timeout,
a restart). Sending on it then fails before the server saw the request, so such a
failure on a *reused* connection is retried once on a fresh one; a failure on a fresh
connection is the caller's.

urllib3 (an ``HTTPConnectionPool`` with ``Retry(total=1, read=0)``) was measured in its place
with ``bench/httpclient_bench.py``: 1.77x the CPU per request and 0.73x the throughput
(2026-12-05, medians of three rounds), so these 70 lines stay.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class EngineConnections:
    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"engine URL must be http:// or https://, got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=timeout)
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                timeout: float) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's connection: (status, headers, body)."""
        for _ in range(2):
            conn, reused = self._connection(timeout)
            try:
                conn.request(method, self._prefix + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE:
                self._drop()
                if reused:
                    continue
                raise
            except BaseException:
                self._drop()  # a timeout or a protocol error leaves the connection unusable
                raise
            if resp.will_close:
                self._drop()
            return resp.status, dict(resp.headers), data
        raise AssertionError("unreachable")
