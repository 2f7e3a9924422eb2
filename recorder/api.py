"""A small typed Python API for embedding Durascope and for tests.

ds = Durascope.open("sqlite:///durascope.db")
ds.register_function("orders", "orders.handler:main", code_dir="./src")
arn = ds.start("orders", '{"id": 42}')
print(ds.wait(arn).status)
ds.close()
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from recorder.config import Settings
from recorder.engine.closings import Closings
from recorder.engine.control import ControlPlane, FunctionSpec, now_ms
from recorder.engine.engine import Engine
from recorder.engine.invoker import InProcessInvoker
from recorder.engine.processes import ProcessInvoker
from recorder.engine.workers import WorkerPool
from recorder.queries import (
    TERMINAL,
    execution_description,
    execution_outcome,
    find_execution,
    iter_history,
    pause_details,
)
from recorder.sigv4 import KeyRing
from recorder.store.db import Database
from recorder.wire import ErrorObject
from recorder.worker import DirectBackend, WorkerHost

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, message: str = "condition not met") -> T:
    """Poll ``predicate`` until it returns something true (and return that), backing off
    from 5 ms to 100 ms; TimeoutError with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


@dataclass(frozen=True)
class ExecutionSummary:
    arn: str
    name: str
    function: str
    status: str
    result: str | None
    error: dict[str, Any] | None
    start_ms: int
    end_ms: int | None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class Durascope:
    # How often ``wait`` re-reads an execution whose close it has not been told of: closes
    # committed by another process (a second engine, another server on the same file)
    # reach this process only through the database.
    RECHECK_SECONDS = 0.25

    def __init__(
        self, settings: Settings, run_engine: bool = True, invoker: str = "in-process", engine_url: str | None = None
    ) -> None:
        """``invoker``: "in-process" runs handlers on the engine's threads (the fast path), or in
        ``settings.invoker_processes`` child interpreters when that is set;
        "workers" runs them in ``awslambdaric`` processes started on demand, which reach the
        engine over HTTP at ``engine_url`` (settable later with ``set_engine_url``)."""
        self.settings = settings
        self.db = Database(settings.database_url)
        self.db.check_schema(settings.auto_upgrade)
        self.control = ControlPlane(self.db, settings)
        self.closings = Closings()
        self.control.add_close_listener(self.closings.closed)
        self.engine: Engine | None = None
        self.invoker: InProcessInvoker | ProcessInvoker | None = None
        self.workers: WorkerPool | None = None
        self.local_workers: WorkerHost | None = None
        if invoker not in ("in-process", "workers"):
            raise ValueError(f"invoker must be in-process or workers, not {invoker!r}")
        if run_engine:
            if invoker == "workers":
                self.workers = WorkerPool(self.control)
                self.engine = Engine(self.control, self.workers)
                if engine_url:
                    self.set_engine_url(engine_url)
            else:
                self.invoker = (
                    ProcessInvoker(self.control, settings.invoker_processes)
                    if settings.invoker_processes
                    else InProcessInvoker(self.control)
                )
                self.engine = Engine(self.control, self.invoker)
            self.engine.start()

    def set_engine_url(self, engine_url: str) -> None:
        """Start local worker processes on demand; they reach this engine at ``engine_url``."""
        assert self.workers is not None
        host = WorkerHost(
            DirectBackend(self.workers), engine_url, self.settings.region, self.settings.worker_concurrency
        )
        self.local_workers = host

        def on_demand(function: str) -> None:
            spec = self.control.get_function(function)
            if spec is not None:
                host.ensure(self.worker_config(spec))

        self.workers.on_demand = on_demand

    def worker_config(self, spec: FunctionSpec) -> FunctionSpec:
        """What a worker host needs to run a function: with keys configured, the function's
        own narrow key for its runtimes (never a key of the deployment's)."""
        keys = KeyRing(self.settings.access_keys)
        return dataclasses.replace(spec, runtime_credentials=keys.runtime_credentials(spec.name) if keys else None)

    @classmethod
    def open(cls, database_url: str | None = None, run_engine: bool = True, **settings: Any) -> Durascope:
        overrides = dict(settings)
        if database_url:
            overrides["database_url"] = database_url
        return cls(Settings.from_env(**overrides), run_engine=run_engine)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        if self.engine is not None:
            self.engine.stop(wait=True)
        if self.invoker is not None:
            self.invoker.close()
        if self.local_workers is not None:
            self.local_workers.stop()
        self.db.dispose()

    def __enter__(self) -> Durascope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- functions ---------------------------------------------------------------------

    def register_function(
        self,
        name: str,
        handler: str,
        code_dir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 900,
        execution_timeout: int | None = None,
        retention_days: int | None = None,
    ) -> FunctionSpec:
        spec = FunctionSpec(
            name=name,
            handler=handler,
            code_dir=code_dir,
            env=dict(env or {}),
            timeout=timeout,
            execution_timeout=execution_timeout or self.settings.default_execution_timeout,
            retention_days=retention_days or self.settings.default_retention_days,
        )
        self.control.register_function(spec)
        return spec

    # --- executions ---------------------------------------------------------------------

    def start(self, function: str, payload: str | bytes | None = None, name: str | None = None) -> str:
        return self.control.start_execution(function, payload, name).arn

    def describe(self, arn: str) -> ExecutionSummary:
        arn, name, function, status, result, error_json, start_ms, end_ms = execution_outcome(self.db, arn)
        return ExecutionSummary(
            arn, name, function, status, result, json.loads(error_json) if error_json else None, start_ms, end_ms
        )

    def get_execution(self, arn: str, include_data: bool = True) -> dict[str, Any]:
        with self.db.read() as s:
            e = find_execution(s, arn)
            return execution_description(
                e,
                self.control.function_arn(e.function_name, e.function_version),
                include_data,
                pause=pause_details(s, e),
            )

    def wait(self, arn: str, timeout: float = 60.0) -> ExecutionSummary:
        """The execution's summary once it has closed. Closes this process commits wake
        the waiter at once (``recorder.engine.closings``); others are seen by re-reading."""
        deadline = time.monotonic() + timeout
        recheck = self.RECHECK_SECONDS / 5
        # describe finds only the stored ARN itself, which is what closes are told by.
        with self.closings.watch(arn) as closed:
            while True:
                closed.clear()
                summary = self.describe(arn)
                if summary.done:
                    return summary
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"execution {arn} did not finish within {timeout} s")
                closed.wait(min(remaining, recheck))
                recheck = min(recheck * 2, self.RECHECK_SECONDS)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, message: str = "condition not met") -> T:
        return wait_until(predicate, timeout, message)

    def history(self, arn: str, include_data: bool = True) -> list[dict[str, Any]]:
        return list(iter_history(self.db, arn, include_data))

    # --- callbacks and stop -----------------------------------------------------------------

    def callback_success(self, callback_id: str, result: bytes | str | None = None) -> None:
        data = result.encode() if isinstance(result, str) else result
        self.control.callback_complete(callback_id, True, result=data)

    def callback_failure(self, callback_id: str, error: dict[str, Any] | None = None) -> None:
        self.control.callback_complete(callback_id, False, error=ErrorObject.parse(error or {}))

    def callback_heartbeat(self, callback_id: str) -> None:
        self.control.callback_heartbeat(callback_id)

    def stop(self, arn: str, error: dict[str, Any] | None = None) -> int:
        return self.control.stop_execution(arn, ErrorObject.parse(error) if error else None)

    def pause(self, arn: str, reason: str | None = None, timeout_paused: bool | None = None) -> None:
        self.control.pause_execution(arn, reason, timeout_paused)

    def resume(self, arn: str, reason: str | None = None) -> None:
        self.control.resume_execution(arn, reason)

    def delete(self, arn: str) -> int:
        return self.control.delete_execution(arn)

    @staticmethod
    def now_ms() -> int:
        return now_ms()
