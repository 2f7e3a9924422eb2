"""Worker hosts: run handlers in processes of their own, the way Lambda runs them.

Each *runtime slot* is one ``awslambdaric`` process (the official runtime interface
client, hosting the handler exactly as in Lambda) plus the small Runtime API endpoint it
talks to (``/2018-06-01/runtime/invocation/next``, ``.../response``, ``.../error``,
``/2018-06-01/runtime/init/error``) on a loopback port, like Lambda's per-sandbox RAPID.
The endpoint relays to the engine through a ``Backend``:

* ``HttpBackend`` for ``durascope worker --engine URL`` on any host: the worker talks to
  the engine over HTTP only (``viewer.runtime_api``);
* ``DirectBackend`` for the workers ``durascope serve`` starts itself.

Either way the SDK inside the handler checkpoints through boto3 with
``AWS_ENDPOINT_URL_LAMBDA`` pointing at the engine. Processes are reused across
invocations (warm environments). A slot's supervisor notices a runtime that dies
mid-invocation (``os._exit``, SIGKILL, the kernel's OOM killer) or overruns the function
timeout (it is killed), reports the invocation as failed (``Runtime.ExitError`` /
``Sandbox.Timedout``) so the engine retries it as Lambda does, and starts a fresh runtime.
What the runtime prints is attributed to the invocation it was running and stored with it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from recorder.engine.invoker import runtime_exited, split_handler
from recorder.httpclient import EngineConnections
from recorder.sigv4 import sign_headers

log = logging.getLogger("durascope.worker")

RUNTIME_PREFIX = "/2018-06-01/runtime"
POLL_SECONDS = 20.0
# How late a runtime past its deadline may be noticed (it is then killed).
DEADLINE_CHECK_SECONDS = 0.25
_LEVELS = ("[DEBUG]", "[INFO]", "[WARNING]", "[ERROR]", "[CRITICAL]")


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    handler: str
    code_dir: str | None
    env: dict[str, str]
    timeout: int
    memory_mb: int = 512

    @property
    def lambda_handler(self) -> str:
        """``awslambdaric`` takes Lambda's ``module.function`` form."""
        module, attr = split_handler(self.handler)
        return f"{module}.{attr}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FunctionConfig:
        return cls(str(d["FunctionName"]), str(d["Handler"]), d.get("CodeDir"), dict(d.get("Environment") or {}),
                   int(d.get("Timeout", 900)), int(d.get("MemorySize", 512)))

    def to_dict(self) -> dict[str, Any]:
        return {"FunctionName": self.name, "Handler": self.handler, "CodeDir": self.code_dir,
                "Environment": self.env, "Timeout": self.timeout, "MemorySize": self.memory_mb}


@dataclass(frozen=True)
class Task:
    """An invocation taken from the engine."""

    request_id: str
    event: bytes
    deadline_ms: int
    function_arn: str


class Backend(Protocol):
    def next(self, function: str, worker: str, wait_seconds: float) -> Task | None: ...
    def respond(self, function: str, request_id: str, body: bytes) -> None: ...
    def fail(self, function: str, request_id: str, error: dict[str, Any]) -> None: ...
    def logs(self, function: str, request_id: str, lines: list[dict[str, Any]]) -> None: ...


class HttpBackend:
    """The engine's worker endpoints over HTTP (``viewer.runtime_api``), SigV4-signed
    when credentials are given (engines with DURASCOPE_ACCESS_KEYS require it)."""

    def __init__(self, engine_url: str, credentials: tuple[str, str] | None = None, region: str = "us-east-1") -> None:
        self.base = engine_url.rstrip("/") + "/durascope/runtime"
        self.credentials = credentials
        self.region = region
        self._connections = EngineConnections(self.base)

    def _call(self, method: str, path: str, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.credentials is not None:
            headers = sign_headers(method, self.base + path, body, self.credentials[0], self.credentials[1],
                                   self.region, headers)
        return self._connections.request(method, path, body, headers, timeout)

    def functions(self) -> list[FunctionConfig]:
        status, _, body = self._call("GET", "/functions")
        if status != 200:
            raise RuntimeError(f"engine answered {status}: {body[:200]!r}")
        return [FunctionConfig.from_dict(d) for d in json.loads(body)["Functions"]]

    def next(self, function: str, worker: str, wait_seconds: float) -> Task | None:
        q = urllib.parse.urlencode({"wait": wait_seconds, "worker": worker})
        status, headers, body = self._call("GET", f"/{urllib.parse.quote(function)}/next?{q}", timeout=wait_seconds + 30)
        if status == 204:
            return None
        if status != 200:
            raise RuntimeError(f"engine answered {status}: {body[:200]!r}")
        return Task(headers["Lambda-Runtime-Aws-Request-Id"], body, int(headers["Lambda-Runtime-Deadline-Ms"]),
                    headers["Lambda-Runtime-Invoked-Function-Arn"])

    def respond(self, function: str, request_id: str, body: bytes) -> None:
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/response", body)

    def fail(self, function: str, request_id: str, error: dict[str, Any]) -> None:
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/error", json.dumps(error).encode())

    def logs(self, function: str, request_id: str, lines: list[dict[str, Any]]) -> None:
        self._call("POST", f"/{urllib.parse.quote(function)}/invocation/{request_id}/logs",
                   json.dumps({"Lines": lines}).encode())


class DirectBackend:
    """The engine's ``WorkerPool`` in the same process (workers started by ``serve``)."""

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

    def logs(self, function: str, request_id: str, lines: list[dict[str, Any]]) -> None:
        store_worker_logs(self.pool, request_id, lines)


def store_worker_logs(pool: Any, request_id: str, lines: list[dict[str, Any]]) -> None:
    from recorder.engine.logs import CapturedLine

    execution_id = pool.execution_of(request_id)
    if execution_id is None:
        return
    captured = [CapturedLine(int(ln.get("ts_ms") or time.time() * 1000), str(ln.get("level") or "STDOUT")[:16],
                             None, str(ln.get("message") or "")[:65536], None) for ln in lines[:5000]]
    pool.control.store_logs(execution_id, request_id, captured)


class _Output:
    """A runtime's stdout and stderr (one pipe), cut into lines without blocking.

    The reader thread and an ending invocation both read it, under the slot's lock, so
    each line is taken once and given to the invocation running when it was taken. Only
    the reader thread closes the pipe, so its ``poll`` never sees a reused descriptor.
    """

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self._partial = b""
        self.ended = False

    def wait_readable(self) -> None:
        """Block until there is output or the end of it (which stays readable). ``poll``,
        not ``select``: an engine with many runtimes and connections has descriptors
        above ``select``'s 1,024."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.poll()

    def close(self) -> None:
        self._pipe.close()

    def drain(self, final: bool = False) -> list[dict[str, Any]]:
        """The complete lines in the pipe now; with ``final`` (or at the end of the
        output) also a last one without a newline."""
        chunks = [self._partial]
        while not self.ended:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self.ended = True
                break
            chunks.append(data)
        *complete, self._partial = b"".join(chunks).split(b"\n")
        if (final or self.ended) and self._partial:
            complete.append(self._partial)
            self._partial = b""
        now = int(time.time() * 1000)
        return [_line(raw, now) for raw in complete]


def _line(raw: bytes, ts_ms: int) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace")
    level = "STDOUT"
    for marker in _LEVELS:
        if text.startswith(marker):
            level = marker.strip("[]")
            break
    return {"ts_ms": ts_ms, "level": level, "message": text}


@dataclass
class _Current:
    task: Task
    lines: list[dict[str, Any]] = field(default_factory=list)


class RuntimeSlot:
    """One runtime process and its Runtime API endpoint, supervised."""

    def __init__(self, backend: Backend, config: FunctionConfig, engine_url: str, region: str,
                 credentials: tuple[str, str] = ("durascope", "durascope")) -> None:
        self.backend = backend
        self.config = config
        self.engine_url = engine_url
        self.region = region
        self.credentials = credentials
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lock = threading.Lock()
        self._current: _Current | None = None
        self._init_error: dict[str, Any] | None = None
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: _Output | None = None
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name=f"runtime-api-{self.config.name}", daemon=True).start()
        threading.Thread(target=self._supervise, name=f"runtime-{self.config.name}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._server.shutdown()
        self._server.server_close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- the runtime process -----------------------------------------------------------

    def _env(self) -> dict[str, str]:
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DURASCOPE_"))}
        env.update(cfg.env)
        code_dir = cfg.code_dir or os.getcwd()
        env.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
            "_HANDLER": cfg.lambda_handler,
            "LAMBDA_TASK_ROOT": code_dir,
            "AWS_LAMBDA_FUNCTION_NAME": cfg.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(cfg.timeout),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials[0],
            "AWS_SECRET_ACCESS_KEY": self.credentials[1],
            "AWS_ENDPOINT_URL_LAMBDA": self.engine_url,
            "PYTHONUNBUFFERED": "1",
        })
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code_dir, env.get("PYTHONPATH", "")) if p)
        return env

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", self.config.lambda_handler],
            env=self._env(), cwd=self.config.code_dir or None,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert proc.stdout is not None
        output = _Output(proc.stdout)
        with self._lock:
            self._output = output
        threading.Thread(target=self._read_output, args=(output,), daemon=True).start()
        return proc

    def _read_output(self, output: _Output) -> None:
        """Take the runtime's output as it comes, for the invocation running then."""
        while True:
            output.wait_readable()
            with self._lock:
                lines = output.drain()
                current = self._current
                if current is not None:
                    current.lines.extend(lines)
                    lines = []
            for line in lines:
                log.debug("%s runtime: %s", self.config.name, line["message"])
            if output.ended:
                output.close()
                return

    def _collect(self, current: _Current) -> list[dict[str, Any]]:
        """Everything the runtime wrote for an invocation it has ended (or died in).

        It wrote that output before it posted its response (it runs unbuffered) or before
        it exited, so the output is in the pipe now: read to the end of what is there,
        with a last line that has no newline, instead of pausing for the reader thread.
        """
        with self._lock:
            output = self._output
            if output is not None:
                current.lines.extend(output.drain(final=True))
            lines = list(current.lines)
            current.lines.clear()
        return lines

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._proc = proc = self._spawn()
            # A thread blocked in waitpid tells us the runtime exited. Popen.wait(timeout)
            # polls (waitpid and a sleep, ~7 times a call): with a 50 ms timeout here each
            # runtime woke the engine ~140 times a second.
            exited = threading.Event()
            threading.Thread(target=lambda: (proc.wait(), exited.set()), daemon=True,
                             name=f"durascope-runtime-wait-{proc.pid}").start()
            reason: dict[str, Any] | None = None
            while not self._stopping.is_set():
                with self._lock:
                    current = self._current
                # Look again at least every DEADLINE_CHECK_SECONDS: an invocation taken
                # meanwhile brings a deadline.
                wait = DEADLINE_CHECK_SECONDS if current is None else \
                    min(DEADLINE_CHECK_SECONDS, max(0.0, current.task.deadline_ms / 1000 - time.time()))
                code = proc.returncode if exited.wait(wait) else None
                if code is not None:
                    reason = {"errorType": "Runtime.ExitError",
                              "errorMessage": f"RequestId: {current.task.request_id if current else '-'} "
                                              f"Error: {runtime_exited(code)}"}
                    break
                if current is not None and time.time() * 1000 > current.task.deadline_ms:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    reason = {"errorType": "Sandbox.Timedout",
                              "errorMessage": f"Task timed out after {self.config.timeout:.2f} seconds"}
                    break
            if self._stopping.is_set():
                return
            with self._lock:
                current, self._current = self._current, None
            if current is not None and reason is not None:
                self._finish(current, lambda: self.backend.fail(self.config.name, current.task.request_id, reason))
            if self._init_error is not None:
                self._fail_next_with_init_error()
            # A runtime that keeps dying must not spin: back off a little.
            self._stopping.wait(0.2 if current is not None else 1.0)

    def _fail_next_with_init_error(self) -> None:
        """Lambda reports an init failure as the failure of the invocation it was for."""
        error, self._init_error = self._init_error, None
        try:
            task = self.backend.next(self.config.name, self.worker_id, 1.0)
        except Exception:  # noqa: BLE001 - the engine may be gone; the next start retries
            return
        if task is not None and error is not None:
            self.backend.fail(self.config.name, task.request_id, error)

    def _finish(self, current: _Current, send: Any) -> None:
        """Store the invocation's output, then report its outcome (the engine forgets an
        invocation once it has its outcome)."""
        lines = self._collect(current)
        if lines:
            try:
                self.backend.logs(self.config.name, current.task.request_id, lines)
            except Exception:  # noqa: BLE001 - logs are best effort, never the invocation's outcome
                log.exception("could not store logs of %s", current.task.request_id)
        send()

    # --- Runtime API requests (called by the HTTP handler) ----------------------------------

    def runtime_next(self) -> Task | None:
        while not self._stopping.is_set():
            task = self.backend.next(self.config.name, self.worker_id, POLL_SECONDS)
            if task is not None:
                with self._lock:
                    self._current = _Current(task)
                return task
        return None

    def runtime_done(self, request_id: str, body: bytes, error: bool) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.task.request_id != request_id:
                return False
        try:
            self._finish_done(current, request_id, body, error)
        finally:
            with self._lock:
                if self._current is current:
                    self._current = None
        return True

    def _finish_done(self, current: _Current, request_id: str, body: bytes, error: bool) -> None:
        if error:
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                payload = {"errorType": "Runtime.InvalidError", "errorMessage": body[:1000].decode("utf-8", "replace")}
            self._finish(current, lambda: self.backend.fail(self.config.name, request_id, payload))
        else:
            self._finish(current, lambda: self.backend.respond(self.config.name, request_id, body))

    def runtime_init_error(self, body: bytes) -> None:
        try:
            self._init_error = json.loads(body) if body else {"errorType": "Runtime.Unknown"}
        except ValueError:
            self._init_error = {"errorType": "Runtime.InitError", "errorMessage": body[:1000].decode("utf-8", "replace")}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request (crash, timeout) resets its connection: expected.
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def _handler_for(slot: RuntimeSlot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle's algorithm the body would wait
        # for the runtime's delayed ACK of the headers on its kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                self._reply(404, b'{"errorType": "NotFound"}')
                return
            try:
                task = slot.runtime_next()
            except Exception as exc:  # noqa: BLE001 - the engine is unreachable: let the runtime retry
                self._reply(500, json.dumps({"errorType": "Runtime.Unavailable", "errorMessage": str(exc)}).encode())
                return
            if task is None:
                self._reply(500, b'{"errorType": "Runtime.Stopping"}')
                return
            self._reply(200, task.event, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": task.request_id,
                "Lambda-Runtime-Deadline-Ms": str(task.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": task.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            })

        def do_POST(self) -> None:
            body = self._body()
            parts = self.path.split("/")
            if self.path == f"{RUNTIME_PREFIX}/init/error":
                slot.runtime_init_error(body)
                self._reply(202, b"{}")
            elif len(parts) == 6 and self.path.startswith(f"{RUNTIME_PREFIX}/invocation/") and parts[5] in ("response", "error"):
                known = slot.runtime_done(parts[4], body, error=parts[5] == "error")
                self._reply(202 if known else 400, b"{}" if known else b'{"errorType": "InvalidRequestID"}')
            else:
                self._reply(404, b'{"errorType": "NotFound"}')

    return Handler


class WorkerHost:
    """Several runtime slots per function (the function's concurrency)."""

    def __init__(self, backend: Backend, engine_url: str, region: str, concurrency: int = 2,
                 credentials: tuple[str, str] | None = None) -> None:
        self.backend = backend
        self.engine_url = engine_url
        self.region = region
        self.concurrency = max(1, concurrency)
        # What the SDK inside the runtimes signs its checkpoints with.
        self.credentials = credentials or ("durascope", "durascope")
        self.slots: dict[str, list[RuntimeSlot]] = {}
        self._lock = threading.Lock()

    def ensure(self, config: FunctionConfig) -> list[RuntimeSlot]:
        with self._lock:
            slots = self.slots.get(config.name)
            if slots:
                return slots
            slots = [RuntimeSlot(self.backend, config, self.engine_url, self.region, self.credentials)
                     for _ in range(self.concurrency)]
            for slot in slots:
                slot.start()
            self.slots[config.name] = slots
            return slots

    def stop(self) -> None:
        with self._lock:
            slots = [s for group in self.slots.values() for s in group]
            self.slots.clear()
        for slot in slots:
            slot.stop()


def run_worker(engine_url: str, functions: list[str] | None, concurrency: int, region: str) -> None:
    """``durascope worker``: serve the named functions (or all registered) until SIGTERM.
    Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as for any AWS client."""
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    credentials = (key_id, secret) if key_id and secret else None
    backend = HttpBackend(engine_url, credentials, region)
    known = {f.name: f for f in backend.functions()}
    wanted = functions or sorted(known)
    missing = [f for f in wanted if f not in known]
    if missing:
        raise ValueError(f"the engine at {engine_url} has no function {', '.join(missing)}")
    host = WorkerHost(backend, engine_url, region, concurrency, credentials)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    for name in wanted:
        host.ensure(known[name])
    print(f"worker serving {', '.join(wanted)} for {engine_url} ({concurrency} runtime(s) each)", file=sys.stderr, flush=True)
    stopped.wait()
    host.stop()
