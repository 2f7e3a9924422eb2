"""Webhook receivers on loopback for the webhook tests (delivery, reliability, security).

``Receiver`` verifies every Standard Webhooks signature, remembers every request it saw
and the ones it accepted, and can be down (its port refuses connections), answer another
status (500), or hold requests until released (to kill a sender mid-delivery).
``TcpServer`` misbehaves below HTTP: trickles, holds, stays silent.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Seen:
    webhook_id: str
    event: dict[str, Any] | None
    path: str
    answered: int | None  # None: held, and the connection went away before an answer


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict, str]] = []  # (webhook-id, event, path), answered 2xx
        self.seen: list[Seen] = []
        self.secrets: dict[str, str] = {}  # path -> secret
        self.bad: list[str] = []
        self.status = 200
        self.holding = False  # hold requests until release()
        self.held = threading.Event()  # set once a request is being held
        self._release = threading.Event()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    def up(self) -> None:
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event = recv._verify(self.path, body, dict(self.headers))
                wid = self.headers["webhook-id"]
                if recv.holding:
                    recv.held.set()
                    recv._release.wait(60)
                status = recv.status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "8")
                    self.end_headers()
                    self.wfile.write(b"received")
                    self.wfile.flush()
                except OSError:
                    status = None
                with recv.lock:
                    recv.seen.append(Seen(wid, event, self.path, status))
                    if status is not None and 200 <= status < 300 and event is not None:
                        recv.received.append((wid, event, self.path))

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _verify(self, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        secret = self.secrets.get(path)
        try:
            if secret is None:
                self.bad.append("no secret for " + path)
                return json.loads(body)
            return Webhook(secret).verify(body, headers)
        except Exception as exc:  # noqa: BLE001 - a bad signature is recorded, not raised
            self.bad.append(repr(exc))
            return None

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def release(self) -> None:
        self.holding = False
        self._release.set()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[str, dict]]:
        """(webhook-id, event) of the accepted deliveries to ``path``, in arrival order."""
        with self.lock:
            return [(i, e) for i, e, p in self.received if p == path]


def statuses(events: list[tuple[str, dict]], arn: str) -> list[str]:
    return [e["detail"]["status"] for _, e in events if e["detail"]["durableExecutionArn"] == arn]


def one_id_per_event(seen: list[Seen]) -> bool:
    """Every request that carried the same event (its EventBridge ``id``) carried the same webhook-id."""
    ids: dict[str, set[str]] = {}
    for s in seen:
        if s.event is not None:
            ids.setdefault(s.event["id"], set()).add(s.webhook_id)
    return all(len(v) == 1 for v in ids.values())


class TcpServer:
    """A TCP server whose connections do what ``mode`` says: ``answer`` (200), ``trickle``
    (one byte of a status line every 0.2 s, forever), ``hold`` (read the request, answer
    nothing) or ``silent`` (not a byte, not even a TLS handshake). ``accepted`` counts the
    connections, ``received`` keeps the bytes of the requests."""

    def __init__(self, mode: str, tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.received = b""
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.closed.is_set():
                conn.close()
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.mode == "silent":
                self.closed.wait()
                return
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.conns.append(conn)
            self.received += conn.recv(65536)
            if self.mode == "answer":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            while not self.closed.is_set():
                if self.mode == "trickle":
                    conn.sendall(b"H")
                self.closed.wait(0.2)
        except OSError:
            pass

    @property
    def held(self) -> int:
        return self.accepted

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        """Refuse new connections and end the open ones (shutdown first: a close alone does
        not wake a thread blocked in accept or recv on Linux)."""
        self.closed.set()
        for sock in (self.sock, *self.conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
