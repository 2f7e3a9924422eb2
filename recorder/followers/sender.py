"""HTTP/1.1 for webhook deliveries: kept-alive connections, the address policy on every connect,
a deadline per attempt.

A delivery is a small POST whose answer matters only for its status code and first
bytes, so this is a minimal client: a request is one ``sendall`` and the response is
parsed from a byte buffer. urllib3 (and ``http.client`` under it) writes the head and
the body in two sends, validates every header in Python, wraps every response in a file
object and parses its headers with the ``email`` package: with the same peer check and
deadline it took 310 us of CPU per POST against 60 here, and halved the dispatcher's
throughput (``bench/webhooks_bench.py``; figures in ``bench/WEBHOOKS.md``).

Handled: Content-Length, chunked and close-delimited bodies, 1xx interim responses,
``Connection: close`` and HTTP/1.0 keep-alive rules. A body over ``MAX_DRAIN`` bytes is
not read to its end: the connection is closed instead. A kept-alive connection the
receiver closed just before it was used is tried once more on a fresh one.

Each sending thread keeps one connection per origin. Two guarantees:

* the address policy (``addresses.refused_address``) is checked after the TCP connect and
  before any byte (TLS handshake included) is sent, against the address actually
  connected to, so DNS cannot sneak past it (rebinding);
* every blocking call of an attempt waits at most until the attempt's deadline,
  ``timeout_seconds`` after it started (connect, TLS handshake, send, response). A
  timeout per call alone let a receiver that trickles a byte every few seconds hold a
  sending thread for days. Once the status line and headers are in, a body cut short by
  the deadline does not undo the answer.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from recorder.followers.addresses import is_private, refused_address
from recorder.followers.webhooks import WebhookSettings

EXCERPT_CHARS = 512
_EXCERPT_BYTES = EXCERPT_CHARS * 4
_MAX_HEAD = 64 * 1024
MAX_DRAIN = 1024 * 1024
# Printable ASCII stays as written in the URL; anything else is percent-encoded.
_PATH_SAFE = "".join(chr(c) for c in range(33, 127))


def _text(value: str) -> str:
    """What a receiver sent, made storable: PostgreSQL text cannot hold NUL, and a row that
    cannot be recorded would be sent again forever."""
    return value[:EXCERPT_CHARS].replace("\x00", "\ufffd")


class RefusedAddress(OSError):
    pass


class RemoteDisconnected(ConnectionError):
    """The server closed the connection before a response (a kept-alive one timed out)."""


class ProtocolError(OSError):
    """The response is not HTTP/1.x."""


class DeadlineExceeded(TimeoutError):
    """The attempt's deadline passed."""


@dataclass(frozen=True)
class PostResult:
    """What one POST gave: the status code (None when no response came), the start of the
    response body, or why it failed; ``private``: the peer was not a global address."""

    status: int | None
    excerpt: str | None
    error: str | None
    private: bool = True


@dataclass(frozen=True)
class _Target:
    """A URL parsed once: where to connect and the fixed part of the request head."""

    scheme: str
    host: str
    port: int
    head: bytes

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_PATH_SAFE)
        name = host.encode("idna") if not host.isascii() else host.encode()
        if b":" in name:
            name = b"[" + name + b"]"
        if parts.port is not None and parts.port != (443 if https else 80):
            name += b":%d" % parts.port
        lines = [
            b"POST %s HTTP/1.1" % path.encode(),
            b"Host: " + name,
            b"Content-Type: application/json",
            b"User-Agent: durascope-webhooks/1",
        ]
        if parts.username or parts.password:
            userinfo = f"{parts.username or ''}:{parts.password or ''}".encode()
            lines.append(b"Authorization: Basic " + base64.b64encode(userinfo))
        return cls(parts.scheme, host, port, b"\r\n".join(lines) + b"\r\n")


class _Connection:
    def __init__(self, target: _Target, context: ssl.SSLContext, refuse: Callable[[str], str | None] | None) -> None:
        self.target = target
        self.context = context
        self.refuse = refuse
        self.sock: socket.socket | None = None
        self.buf = b""
        self.deadline = 0.0
        self.private = True

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b""

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the attempt's deadline passed")
        return left

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.target.host, self.target.port), timeout=self._left())
        try:
            peer = str(sock.getpeername()[0])
            why = self.refuse(peer) if self.refuse is not None else None
            if why:
                raise RefusedAddress(f"refused: {why}; set DURASCOPE_WEBHOOKS_ALLOW_PRIVATE=1 to allow it")
            self.private = is_private(peer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.target.scheme == "https":
                sock.settimeout(self._left())  # the handshake as a whole waits at most this long
                sock = self.context.wrap_socket(sock, server_hostname=self.target.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def exchange(self, request: bytes, deadline: float) -> tuple[int, bytes]:
        """Send one request, read its response: (status, start of the body). The connection
        is closed afterwards when the response does not allow keeping it."""
        self.deadline = deadline
        if self.sock is None:
            self.sock = self._connect()
        self.sock.settimeout(self._left())
        self.sock.sendall(request)
        status, body, keep = self._response()
        if not keep:
            self.close()
        return status, body

    # --- reading -----------------------------------------------------------------------------

    def _fill(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(self._left())
        data = self.sock.recv(65536)
        if not data:
            raise RemoteDisconnected("Remote end closed connection without response")
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        while (i := self.buf.find(marker)) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise ProtocolError("response head longer than 64 KiB")
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + len(marker) :]
        return out

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _response(self) -> tuple[int, bytes, bool]:
        while True:
            lines = self._until(b"\r\n\r\n").split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
                raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            status = int(rest[:3])
            if not (100 <= status < 200 and status != 101):
                break  # 1xx interim responses (103 Early Hints) precede the real one
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get(b"connection", b"").lower()
        keep = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
        if status < 200 or status in (204, 304):
            return status, b"", keep and status != 101
        try:
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                body, complete = self._chunked()
            elif (length := headers.get(b"content-length")) is not None:
                if not length.isdigit():
                    raise ProtocolError(f"bad Content-Length: {length[:40]!r}")
                body, complete = self._sized(int(length))
            else:
                body, complete = self._to_close(), False
        except OSError:  # the answer came; a body cut short (or too slow) does not undo it
            body, complete = self.buf[:_EXCERPT_BYTES], False
        return status, body, keep and complete

    def _sized(self, n: int) -> tuple[bytes, bool]:
        if n > MAX_DRAIN:
            return self._take(min(n, _EXCERPT_BYTES)), False
        return self._take(n)[:_EXCERPT_BYTES], True

    def _chunked(self) -> tuple[bytes, bool]:
        body, total = b"", 0
        while True:
            size_line = self._until(b"\r\n").split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size: {size_line[:40]!r}") from None
            if size == 0:
                while self._until(b"\r\n"):  # trailer fields, up to the empty line
                    pass
                return body, True
            total += size
            if total > MAX_DRAIN:
                return body, False
            chunk = self._take(size + 2)[:size]
            if len(body) < _EXCERPT_BYTES:
                body += chunk[: _EXCERPT_BYTES - len(body)]

    def _to_close(self) -> bytes:
        try:
            while len(self.buf) < MAX_DRAIN:
                self._fill()
        except RemoteDisconnected:
            pass
        return self.buf[:_EXCERPT_BYTES]


class Sender:
    """Kept-alive connections per thread and origin; the peer address is checked on connect."""

    def __init__(self, ws: WebhookSettings, refuse: Callable[[str], str | None] | None = None) -> None:
        self.ws = ws
        # ``refuse``: the address policy; a test may pass its own to show where it is applied.
        self._refuse = refuse if refuse is not None else (None if ws.allow_private else refused_address)
        self._local = threading.local()
        self._ssl = ssl.create_default_context()
        self._targets: dict[str, _Target] = {}
        # Every thread's connections, so close() can close them all from one thread.
        self._all: set[_Connection] = set()
        self._all_lock = threading.Lock()

    def _conn(self, target: _Target) -> _Connection:
        conns: dict[tuple[str, str, int], _Connection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (target.scheme, target.host, target.port)
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = _Connection(target, self._ssl, self._refuse)
            with self._all_lock:
                self._all.add(conn)
        return conn

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 1024:
                self._targets.clear()
            target = self._targets[url] = _Target.parse(url)
        return target

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        deadline = time.monotonic() + self.ws.timeout_seconds
        target = self._target(url)
        request = b"".join(
            [
                target.head,
                b"Content-Length: %d\r\n" % len(body),
                *(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items()),
                b"\r\n",
                body,
            ]
        )
        for retry in (0, 1):
            conn = self._conn(target)
            reused = conn.sock is not None
            try:
                status, excerpt = conn.exchange(request, deadline)
                return PostResult(status, _text(excerpt.decode("utf-8", "replace")), None, conn.private)
            except RefusedAddress as exc:
                conn.close()
                return PostResult(None, None, str(exc))
            except OSError as exc:
                conn.close()
                # A kept-alive connection the server had closed: once more on a fresh one.
                if (
                    reused
                    and retry == 0
                    and isinstance(exc, (RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                ):
                    continue
                if isinstance(exc, TimeoutError):
                    return PostResult(
                        None,
                        None,
                        f"TimeoutError: no complete answer within the "
                        f"{self.ws.timeout_seconds:g} s deadline of an attempt",
                    )
                return PostResult(None, None, _text(f"{type(exc).__name__}: {exc}"))
        return PostResult(None, None, "unreachable")

    def close(self) -> None:
        """Close every thread's connections (call when no send is running)."""
        with self._all_lock:
            conns = list(self._all)
        for conn in conns:
            conn.close()
