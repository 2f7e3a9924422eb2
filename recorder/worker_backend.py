"""How a worker host reaches its engine: ``HttpBackend`` over HTTP (``durascope worker
--engine URL``, any host) or ``DirectBackend`` in the engine's own process (the workers
``durascope serve`` starts). Both speak in the same typed values (``FunctionSpec``,
``Task``); the engine's side of either is ``recorder.engine.workers.WorkerPool``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from recorder.engine.boundary import FunctionSpec
from recorder.engine.logs import MAX_BYTES, MAX_LINES, CapturedLine, InvocationLog
from recorder.httpclient import EngineConnections
from recorder.runtime_process import parse_tags
from recorder.sigv4 import sign_headers

# The largest body of one invocation's output an honest worker host sends: MAX_BYTES
# characters (each up to 6 bytes once JSON-escaped) and MAX_LINES lines of framing (time,
# level and tags: an operation id is 64 characters).
LOGS_BODY_LIMIT = 6 * MAX_BYTES + 256 * MAX_LINES


class InsecureEngineURL(ValueError):
    """A plain-http engine URL that is not on this host."""


class EngineRefused(RuntimeError):
    """The engine answered, with an error: it is alive, whatever else is wrong."""


@dataclass(frozen=True)
class Task:
    """An invocation taken from the engine."""

    request_id: str
    event: bytes
    deadline_ms: int
    function_arn: str


@dataclass(frozen=True)
class RuntimeOutput:
    """What a runtime printed during one invocation, already capped (``logs.MAX_*``),
    and how many lines were dropped past the cap."""

    lines: list[dict[str, Any]]
    dropped: int = 0


class Backend(Protocol):
    # Whether the engine lives in another process, so that its death must be watched for.
    remote: bool

    def next(self, function: str, worker: str, wait_seconds: float) -> Task | None: ...
    def respond(self, function: str, request_id: str, body: bytes) -> None: ...
    def fail(self, function: str, request_id: str, error: dict[str, Any]) -> None: ...
    # Lines: {ts_ms, level, message} and, when known, operationId, attempt, replay.
    def logs(self, function: str, request_id: str, output: RuntimeOutput) -> None: ...
    def gone(self, request_ids: list[str], wait_seconds: float) -> list[str]: ...


def require_secure_engine(engine_url: str, insecure: bool) -> None:
    """A worker sends the engine its handlers' results and logs and the SDK sends it every
    checkpoint; in plain http anyone on the path reads and alters them. Plain http is for
    an engine on this host only, unless the operator says ``--insecure``."""
    parts = urllib.parse.urlsplit(engine_url)
    if parts.scheme != "http" or insecure or _is_loopback(parts.hostname or ""):
        return
    raise InsecureEngineURL(
        f"refusing plain http to {parts.hostname}, which is not this host: use https:// (a TLS reverse proxy "
        "in front of durascope serve), or pass --insecure on a network you trust"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


class HttpBackend:
    """The engine's worker endpoints over HTTP (``viewer.runtime_api``), SigV4-signed
    when credentials are given (engines with DURASCOPE_ACCESS_KEYS require it)."""

    remote = True

    def __init__(self, engine_url: str, credentials: tuple[str, str] | None = None, region: str = "us-east-1") -> None:
        self.base = engine_url.rstrip("/") + "/durascope/runtime"
        self.credentials = credentials
        self.region = region
        self._connections = EngineConnections(self.base)

    def _call(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30.0
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.credentials is not None:
            headers = sign_headers(
                method, self.base + path, body, self.credentials[0], self.credentials[1], self.region, headers
            )
        return self._connections.request(method, path, body, headers, timeout)

    def functions(self) -> list[FunctionSpec]:
        status, _, body = self._call("GET", "/functions")
        if status != 200:
            raise RuntimeError(f"engine answered {status}: {body[:200]!r}")
        return [FunctionSpec.from_dict(d) for d in json.loads(body)["Functions"]]

    def next(self, function: str, worker: str, wait_seconds: float) -> Task | None:
        q = urllib.parse.urlencode({"wait": wait_seconds, "worker": worker})
        status, headers, body = self._call(
            "GET", f"/{urllib.parse.quote(function)}/next?{q}", timeout=wait_seconds + 30
        )
        if status == 204:
            return None
        if status != 200:
            raise RuntimeError(f"engine answered {status}: {body[:200]!r}")
        return Task(
            headers["Lambda-Runtime-Aws-Request-Id"],
            body,
            int(headers["Lambda-Runtime-Deadline-Ms"]),
            headers["Lambda-Runtime-Invoked-Function-Arn"],
        )

    def respond(self, function: str, request_id: str, body: bytes) -> None:
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/response", body)

    def fail(self, function: str, request_id: str, error: dict[str, Any]) -> None:
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/error", json.dumps(error).encode())

    def logs(self, function: str, request_id: str, output: RuntimeOutput) -> None:
        body = json.dumps({"Lines": output.lines, "Dropped": output.dropped}, ensure_ascii=False).encode()
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/logs", body)

    def gone(self, request_ids: list[str], wait_seconds: float) -> list[str]:
        """Those of ``request_ids`` the engine no longer waits for; blocks up to
        ``wait_seconds`` while it waits for all. ``EngineRefused`` when it answers with an
        error (an engine without this route, a credential it refuses); OSError and
        http.client's errors when it cannot be reached."""
        body = json.dumps({"RequestIds": request_ids}).encode()
        status, _, answer = self._call("POST", f"/watch?wait={wait_seconds:g}", body, timeout=wait_seconds + 10)
        if status != 200:
            raise EngineRefused(f"engine answered {status}: {answer[:200]!r}")
        return [str(r) for r in json.loads(answer).get("Gone", [])]


class DirectBackend:
    """The engine's ``WorkerPool`` in the same process (workers started by ``serve``)."""

    remote = False

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def next(self, function: str, worker: str, wait_seconds: float) -> Task | None:
        a = self.pool.next(function, worker, wait_seconds)
        if a is None:
            return None
        return Task(a.request_id, json.dumps(a.event).encode(), a.deadline_ms, a.function_arn)

    def respond(self, function: str, request_id: str, body: bytes) -> None:
        self.pool.respond(request_id, body)

    def fail(self, function: str, request_id: str, error: dict[str, Any]) -> None:
        self.pool.fail(request_id, error)

    def logs(self, function: str, request_id: str, output: RuntimeOutput) -> None:
        store_worker_logs(self.pool, request_id, output)

    def gone(self, request_ids: list[str], wait_seconds: float) -> list[str]:
        return self.pool.gone(request_ids, wait_seconds)


def store_worker_logs(pool: Any, request_id: str, output: RuntimeOutput) -> bool:
    """Store an invocation's output under the same caps as in-process output; once per
    invocation (a second batch is refused). False when the invocation is unknown."""
    execution_id = pool.take_logs(request_id)
    if execution_id is None:
        return False
    sink = InvocationLog(execution_id, request_id)
    now = time.time()
    for ln in output.lines:
        ts_ms = ln.get("ts_ms")
        sink.add(
            str(ln.get("level") or "STDOUT")[:16],
            str(ln.get("message") or ""),
            ts=ts_ms / 1000 if isinstance(ts_ms, (int, float)) and math.isfinite(ts_ms) else now,
            tags=parse_tags(ln.get("operationId"), ln.get("attempt"), ln.get("replay")),
        )
    sink.dropped += max(0, output.dropped)
    captured: list[CapturedLine] = sink.finish()
    pool.control.store_logs(execution_id, request_id, captured)
    return True
