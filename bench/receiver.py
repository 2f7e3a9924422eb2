"""A webhook receiver for the benchmarks: a loopback HTTP server that verifies every delivery's
signature (standardwebhooks, with ``secret`` set once the subscription exists) and keeps what
arrived, in arrival order. It answers 204 to everything."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    event_id: str
    arn: str
    status: str
    at: float  # time.time() on arrival


class Receiver:
    def __init__(self, path: str = "/hook") -> None:
        self.secret = ""
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []  # verified ones
        self.ids: list[str] = []  # the webhook-id of every POST, duplicates included
        self.bad = 0  # POSTs whose signature or body did not verify
        self._firsts: dict[str, float] = {}  # ARN -> when its first status change arrived
        self.path = path
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver._take(body, dict(self.headers), time.time())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _take(self, body: bytes, headers: dict[str, str], at: float) -> None:
        try:
            event = Webhook(self.secret).verify(body, headers)
            detail = event["detail"]
            delivery = Delivery(headers["webhook-id"], event["id"], detail["durableExecutionArn"], detail["status"], at)
        except Exception:  # noqa: BLE001 - counted as bad, and so reported
            delivery = None
        with self.lock:
            self.ids.append(headers.get("webhook-id", ""))
            if delivery is None:
                self.bad += 1
            else:
                self.deliveries.append(delivery)
                self._firsts.setdefault(delivery.arn, at)

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def first_arrivals(self) -> dict[str, float]:
        """When each execution's first status change arrived."""
        with self.lock:
            return dict(self._firsts)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
