"""The HTTP server ``durascope serve`` runs: cheroot, with the limits an open port needs.

cheroot (CherryPy's WSGI server) speaks HTTP/1.1 with kept-alive connections (an idle one
waits in a selector and holds no thread), reads a request body only as the application
reads it, so the access rule (``viewer.access``) refuses by the headers before a byte of
the body is read, and passes the request target as sent in ``REQUEST_URI`` (ARNs carry
``%2F``: ``viewer.rawpath``). Around it, this module adds:

* **A thread per request in progress, never a fixed few.** A worker host's long poll, a
  RequestResponse Invoke (up to 15 minutes) and an SSE stream each hold a thread for long;
  a fixed pool would leave a runtime's checkpoint waiting behind them. The pool starts a
  thread whenever none is free, up to one per open connection, and a thread idle for a
  minute ends.
* **A deadline for the request head.** A client that sends its request line and headers
  a byte at a time (each byte in time for a per-read timeout) has its connection cut when
  the whole head has not arrived within ``head_timeout`` seconds of the request's start.
* **A connection cap.** At most ``max_connections`` connections are open; one more is
  answered ``503`` with a message at once and closed, instead of waiting unseen in the
  listen backlog.
* ``PATH_INFO`` percent-decoded as PEP 3333 says: cheroot leaves ``%2F`` encoded in it,
  where Flask's routes expect ``/``.
* A response given before the request's body was read (the access rule's refusals, an
  error) is sent at once; then what the client still sends of that body is read off, up
  to 8 MiB and for at most 5 seconds, so that it reads the answer instead of a reset, and
  the connection closes.
"""

from __future__ import annotations

import io
import logging
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from cheroot import server as cheroot_server
from cheroot.wsgi import Gateway_10
from cheroot.wsgi import Server as CherootServer

from recorder.config import Settings
from viewer.rawpath import raw_path

log = logging.getLogger("durascope.http")

# A body left unread by the answer is read off after it up to this much (above every body
# the access rule lets through, 7 MiB) and for this long; past either the connection just closes.
MAX_DRAIN = 8 * 1024 * 1024
DRAIN_SECONDS = 5.0
MAX_HEAD_BYTES = 64 * 1024
# How long a thread that answered a kept-alive connection waits for its next request before
# handing it to the selector (``_Pool._serve``).
LINGER_SECONDS = 0.02
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"x-amzn-ErrorType: ServiceUnavailableException\r\nRetry-After: 1\r\nConnection: close\r\n"
)
_CUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 1000
    head_timeout: float = 10.0
    # How long a kept-alive connection may sit idle between requests (also each read's and
    # write's timeout once a request is under way).
    idle_timeout: float = 120.0
    min_threads: int = 8
    thread_idle_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(max_connections=settings.max_connections, head_timeout=settings.head_timeout_seconds)


class WSGIServer:
    """A bound server: ``serve_forever()`` serves until ``shutdown()``; ``server_close()``
    also closes the connections still open. ``port=0`` picks a free port (``server_port``)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits = ServerLimits()) -> None:
        self.limits = limits
        self._server = _Server((host, port), app, limits)
        self._server.prepare()  # binds the port and starts the first threads

    @property
    def server_port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def open_connections(self) -> int:
        return self._server.connections.open

    @property
    def accepted(self) -> int:
        """Connections accepted since the start (refused ones included)."""
        return self._server.connections.accepted

    def serve_forever(self) -> None:
        self._server.serve()

    def shutdown(self) -> None:
        self._server.stop()

    def server_close(self) -> None:
        self._server.stop()


# --- connections -----------------------------------------------------------------------------


class _ConnectionCount:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.accepted = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            self.accepted += 1
            if self.open >= self.cap:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open -= 1


class _HeadDeadlines:
    """Connections whose request head is being read, each with the time it must be in by;
    a watcher cuts the late ones (the reading thread then sees the connection end)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: dict[int, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def begin(self, sock: socket.socket) -> int:
        key = id(sock)
        with self._lock:
            self._reading[key] = (time.monotonic() + self.seconds, sock)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="durascope-http-deadlines", daemon=True)
                self._watcher.start()
        return key

    def end(self, key: int) -> None:
        with self._lock:
            self._reading.pop(key, None)

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        tick = min(1.0, self.seconds / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (due, _) in self._reading.items() if due <= now]
                cut = [self._reading.pop(key)[1] for key in late]
            for sock in cut:
                try:
                    sock.send(_CUT, socket.MSG_DONTWAIT)
                except OSError:
                    pass
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Request(cheroot_server.HTTPRequest):
    server: _Server
    read_off = False  # set when the answer started before the body was read

    def parse_request(self) -> None:
        deadlines = self.server.head_deadlines
        key = deadlines.begin(self.conn.socket)
        try:
            super().parse_request()
        finally:
            deadlines.end(key)

    def respond(self) -> None:
        super().respond()
        if self.read_off:
            deadline = time.monotonic() + DRAIN_SECONDS
            try:
                self.conn.socket.settimeout(DRAIN_SECONDS)
                while self.rfile.remaining > 0 and time.monotonic() < deadline:
                    if not self.rfile.read(min(65536, self.rfile.remaining)):
                        break
            except OSError:
                pass  # the client stopped sending or went away: the connection closes either way


class _SocketReader(io.BufferedReader):
    """cheroot's socket reader on the C buffered reader. cheroot's own (``cheroot.makefile``)
    subclasses the pure-Python ``_pyio`` one, which runs Python for every header line read
    (~10 us of the server's ~260 us a request in ``bench/workers_bench.py --only http``)."""

    def __init__(self, sock: socket.socket, mode: str = "rb", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(socket.SocketIO(sock, "rb"), bufsize)
        self._sock = sock
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.bytes_read += len(line)
        return line

    def has_data(self) -> bool:
        """Whether a next request is already here (pipelined, or arrived meanwhile), so the
        kept-alive connection is served again at once instead of going back to the
        selector. Peeks without blocking: a socket with no timeout answers "nothing yet"
        where one with a timeout would wait for it."""
        timeout = self._sock.gettimeout()
        try:
            self._sock.settimeout(0)
            return bool(self.peek(1))
        except OSError:
            return False
        finally:
            try:
                self._sock.settimeout(timeout)
            except OSError:
                pass


class _SocketWriter(io.BufferedWriter):
    """cheroot's socket writer on the C buffered writer; like cheroot's, every write is
    sent at once (cheroot writes the head and then the body, and flushes neither)."""

    def __init__(self, sock: socket.socket, mode: str = "wb", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(socket.SocketIO(sock, "wb"), bufsize)
        self.bytes_written = 0

    def write(self, data: Any) -> int:
        written = super().write(data)
        self.flush()
        self.bytes_written += written
        return written


def _socket_file(sock: socket.socket, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
    return _SocketReader(sock, mode, bufsize) if "r" in mode else _SocketWriter(sock, mode, bufsize)


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request
    server: _Server

    def __init__(self, server: _Server, sock: socket.socket, makefile: Any = cheroot_server.MakeFile) -> None:
        # This server has no TLS adapter, so cheroot always hands its plain-socket files.
        super().__init__(server, sock, _socket_file if makefile is cheroot_server.MakeFile else makefile)
        self.admitted = server.connections.admit()
        self._counted = self.admitted

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._counted:
                self._counted = False
                self.server.connections.release()


class _Gateway(Gateway_10):
    req: _Request

    def respond(self) -> None:
        try:
            super().respond()
        except Exception:
            if self.req.sent_headers:
                raise  # cheroot logs it and closes the connection mid-answer
            log.exception("Error on request %s %s", self.env.get("REQUEST_METHOD"), self.env.get("REQUEST_URI"))
            body = b"Internal Server Error"
            self.req.status = b"500 Internal Server Error"
            self.req.outheaders = [
                (b"Content-Type", b"text/plain"),
                (b"Content-Length", b"%d" % len(body)),
                (b"Connection", b"close"),
            ]
            self.req.close_connection = True
            self.req.ensure_headers_sent()
            self.req.write(body)

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()
        env["PATH_INFO"] = unquote_to_bytes(raw_path(env)).decode("latin-1")
        if self.req.chunked_read:
            self.req.close_connection = True  # an unread chunked body cannot be skipped cheaply
        return env

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        # cheroot would read an unread body off before sending the answer (for a client
        # that announced a body it never sends: until the read times out); it is sent
        # first, and the body read off after it (_Request.respond).
        unread = getattr(self.req.rfile, "remaining", 0)
        if unread > 0 or any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            self.req.close_connection = True
            self.req.read_off = 0 < unread <= MAX_DRAIN
        return super().start_response(status, headers, exc_info)


# --- threads -----------------------------------------------------------------------------------


_STOP = object()


class _Pool:
    """cheroot's thread-pool interface (``min``, ``start``, ``put``, ``stop``) with a thread
    started whenever none is free, so a request never waits behind long-running ones."""

    def __init__(self, server: _Server, min_threads: int, max_threads: int, idle_seconds: float) -> None:
        self.server = server
        self.min = min_threads
        self.max = max(max_threads, min_threads)
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._serving: dict[threading.Thread, Any] = {}  # thread -> the connection it serves, or None
        self._free = 0  # threads not serving, less the connections queued for them
        self._started = 0

    def start(self) -> None:
        with self._lock:
            for _ in range(self.min):
                self._spawn()

    def _spawn(self) -> None:
        self._started += 1
        thread = threading.Thread(target=self._work, name=f"durascope-http-{self._started}", daemon=True)
        self._serving[thread] = None
        self._free += 1
        thread.start()

    def put(self, conn: Any) -> None:
        with self._lock:
            if self._free <= 0 and len(self._serving) < self.max:
                self._spawn()
            self._free -= 1
        self._queue.put(conn)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                conn = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Leave only while another free thread remains for what is queued.
                    if len(self._serving) > self.min and self._free > 0:
                        self._free -= 1
                        del self._serving[me]
                        return
                continue
            if conn is _STOP:
                with self._lock:
                    self._serving.pop(me, None)
                return
            with self._lock:
                self._serving[me] = conn
            try:
                self._serve(conn)
            finally:
                with self._lock:
                    self._serving[me] = None
                    self._free += 1

    def _serve(self, conn: _Connection) -> None:
        """Serve the connection's request, and the next ones that come within ``LINGER_SECONDS``
        of the last answer, before handing it back to the selector. A runtime checkpoints
        again a few milliseconds after its answer: going through the selector each time
        (register, wake, queue, another thread) was ~45 us of the server's ~300 us a request
        (``bench/workers_bench.py --only http``, 16 connections)."""
        while True:
            keep = False
            try:
                keep = conn.communicate()
            except ConnectionError:
                keep = False
            except Exception:
                log.exception("Error while serving a connection")
            if not keep:
                conn.close()
                return
            if not _readable_soon(conn):
                self.server.put_conn(conn)
                return

    def stop(self, timeout: float = 1.0) -> None:
        """Let each thread finish its request for up to ``timeout`` seconds; then cut the
        connections of the ones still busy (a parked long poll or stream), which end
        when their application returns."""
        with self._lock:
            threads = list(self._serving)
        for _ in threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            busy = [conn for conn in self._serving.values() if conn is not None]
        for conn in busy:
            try:
                conn.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _readable_soon(conn: _Connection) -> bool:
    """Whether the connection's next request is buffered or arrives within ``LINGER_SECONDS``."""
    if conn.rfile.has_data():
        return True
    poller = select.poll()
    try:
        poller.register(conn.socket, select.POLLIN)
        return bool(poller.poll(LINGER_SECONDS * 1000))
    except (OSError, ValueError):  # closed meanwhile: the selector finds out
        return False


# --- the server ------------------------------------------------------------------------------


class _Server(CherootServer):
    ConnectionClass = _Connection

    def __init__(self, bind_addr: tuple[str, int], app: Any, limits: ServerLimits) -> None:
        super().__init__(bind_addr, app, timeout=limits.idle_timeout, request_queue_size=128, server_name="durascope")
        self.gateway = _Gateway
        self.max_request_header_size = MAX_HEAD_BYTES
        self.keep_alive_conn_limit = None  # the connection cap below is the limit
        self.shutdown_timeout = 1
        self.expiration_interval = 0.1  # the selector's wake-up: stop() waits for one
        self.connections = _ConnectionCount(limits.max_connections)
        self.head_deadlines = _HeadDeadlines(limits.head_timeout)
        self.requests = _Pool(self, limits.min_threads, limits.max_connections, limits.thread_idle_seconds)

    def process_conn(self, conn: _Connection) -> None:
        if not conn.admitted:
            _refuse(conn, self.connections.cap)
            return
        self.requests.put(conn)

    def serve(self) -> None:
        # cheroot's own serve() also starts a thread for connections its fixed pool cannot
        # queue; this pool queues every one, and that (non-daemon) thread would hold the
        # interpreter open when a caller forgets to stop the server.
        while self.ready:
            try:
                self._connections.run(self.expiration_interval)
            except Exception:
                log.exception("Error in the connection loop")

    def stop(self) -> None:
        self.head_deadlines.stop()
        super().stop()

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # A client that went away mid-request is cheroot's INFO; nothing is wrong here.
        log.log(level if level >= logging.WARNING else logging.DEBUG, "%s", msg, exc_info=traceback)


def _refuse(conn: _Connection, cap: int) -> None:
    """Answer 503 before reading anything, and close: the client retries later."""
    body = b'{"Type":"Server","message":"Too many open connections (DURASCOPE_MAX_CONNECTIONS=%d): retry later"}' % cap
    try:
        conn.socket.send(_REFUSED + b"Content-Length: %d\r\n\r\n" % len(body) + body, socket.MSG_DONTWAIT)
        conn.socket.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()
