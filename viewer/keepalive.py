"""A threaded WSGI server that keeps HTTP/1.1 connections open between requests.

Werkzeug's request handler answers every request with ``Connection: close``: after the
response it drains the socket for 10 ms to discard an unread body, which would also
swallow the next request on a kept-alive connection. boto3 (the SDK in every worker, the
CLI, users' scripts) keeps connections open, so through werkzeug each checkpoint cost a
TCP connect, an accept and a new thread on each side. This handler reuses werkzeug's
environ (``RAW_URI``, which the Lambda routes need) and connection-dropped handling and
replaces only the request cycle:

* the request body is read through a counting stream, and after the response whatever
  the application left unread is read off, so the next request line starts where the
  client put it; a body over ``MAX_DRAIN`` bytes or a chunked one closes the connection
  instead;
* the response keeps the connection when it has a Content-Length or can be sent chunked
  (HTTP/1.1); an HTTP/1.0 client or ``Connection: close`` gets the connection closed;
* a connection idle for ``IDLE_SECONDS`` is closed, and ``server_close`` shuts down the
  ones still open, so a stopped server does not keep answering on old connections.

Still one thread per connection (werkzeug's ``ThreadedWSGIServer``), so a worker's
long poll or a RequestResponse Invoke parks a thread, never a slot of a fixed pool.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from werkzeug.exceptions import InternalServerError
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

# Above every body the API accepts (a 6 MB payload as JSON), so a refused one (413) is
# still read off and the client sees the answer instead of a reset while it sends.
MAX_DRAIN = 16 * 1024 * 1024
IDLE_SECONDS = 120.0
_DROPPED = (ConnectionError, socket.timeout)

log = logging.getLogger(__name__)


class KeepAliveHandler(WSGIRequestHandler):
    server: KeepAliveServer
    protocol_version = "HTTP/1.1"
    # The socket timeout: how long a kept-alive connection may sit idle between requests
    # (http.server closes the connection when reading the next request line times out).
    timeout = IDLE_SECONDS
    # Headers and body go out as two writes; with Nagle's algorithm the second waits for
    # the client's delayed ACK of the first, 40 ms on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out"):
            # http.server's words for a kept-alive connection idle for IDLE_SECONDS (or a
            # client that stalled mid-request): the connection closes, nothing went wrong.
            log.debug(format, *args)
            return
        super().log_error(format, *args)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def run_wsgi(self) -> None:
        # "Expect: 100-continue" was answered by http.server's parse_request (werkzeug
        # answers it a second time).
        environ = self.environ = self.make_environ()
        body: LimitedStream | None = None
        length = 0
        if environ.get("wsgi.input_terminated"):
            self.close_connection = True  # a chunked body cannot be drained cheaply
        else:
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                self.close_connection = True
            if length > MAX_DRAIN:
                # Decided before the response says keep-alive: a body this large is not
                # read off if the application leaves it (a client still sending it may
                # see the connection reset).
                self.close_connection = True
            body = LimitedStream(self.rfile, length)
            environ["wsgi.input"] = body
        response = _Response(self, environ)
        try:
            response.run(self.server.app)
        except _DROPPED as e:
            self.close_connection = True
            self.connection_dropped(e, environ)
            return
        except Exception as e:  # noqa: BLE001 - the application's error becomes a 500, as in werkzeug
            self.close_connection = True
            if self.server.passthrough_errors:
                raise
            if not response.headers_sent:
                try:
                    _Response(self, environ).run(InternalServerError())
                except Exception:  # noqa: BLE001 - the client may be gone as well
                    pass
            log.error("Error on request %s %s: %r", environ.get("REQUEST_METHOD"), environ.get("RAW_URI"), e,
                      exc_info=True)
            return
        if body is not None and length <= MAX_DRAIN and not body.is_exhausted:
            # Also when the connection closes next: a client still sending its body then
            # reads the answer instead of a reset. Bounded by Content-Length, so the next
            # request on a kept connection is never touched.
            body.exhaust()


class _Response:
    """One response on the handler's connection: status and headers on the first write,
    a chunked body when the application gives no length."""

    def __init__(self, handler: KeepAliveHandler, environ: dict[str, Any]) -> None:
        self.h = handler
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.chunked = False

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("Headers already set")
        self.status, self.headers = status, headers
        return self.write

    def _send_headers(self) -> None:
        h = self.h
        assert self.status is not None, "write() before start_response"
        code_text, _, message = self.status.partition(" ")
        code = int(code_text)
        h.send_response(code, message)
        keys = set()
        for key, value in self.headers:
            lowered = key.lower()
            if lowered == "connection":
                continue  # the connection is this server's to keep or close
            keys.add(lowered)
            h.send_header(key, value)
        bodiless = self.environ["REQUEST_METHOD"] == "HEAD" or 100 <= code < 200 or code in (204, 304)
        if "content-length" not in keys and not bodiless:
            if h.request_version >= "HTTP/1.1":
                self.chunked = True
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.close_connection = True  # the body ends where the connection does
        h.send_header("Connection", "close" if h.close_connection else "keep-alive")
        h.end_headers()
        self.headers_sent = True

    def write(self, data: bytes) -> None:
        if not self.headers_sent:
            self._send_headers()
        if data:
            wfile = self.h.wfile
            if self.chunked:
                wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                wfile.write(data)
        self.h.wfile.flush()

    def run(self, app: Any) -> None:
        result = app(self.environ, self.start_response)
        try:
            for data in result:
                self.write(data)
            if not self.headers_sent:
                self.write(b"")
            if self.chunked:
                self.h.wfile.write(b"0\r\n\r\n")
                self.h.wfile.flush()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


class KeepAliveServer(ThreadedWSGIServer):
    """Werkzeug's threaded server with :class:`KeepAliveHandler`; tracks open
    connections so that closing the server closes them too."""

    handler_class: type[KeepAliveHandler] = KeepAliveHandler

    def __init__(self, host: str, port: int, app: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(host, port, app, handler=self.handler_class)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def track(self, conn: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def server_close(self) -> None:
        super().server_close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Shut down every open connection (each handler thread then ends)."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
