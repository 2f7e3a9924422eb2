"""Helpers shared by the conformance handlers (standard library + SDK only).

Log capture: the requirement files check some log lines (CloudWatch in the
original suite). Handlers here write those records as JSON lines to
``$DURASCOPE_CONF_LOG_DIR/<sha1(execution arn)>.jsonl``; the test reads the file
back and validates ``ExpectedLogs`` against it. Without the variable nothing is
written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.config import Duration, JitterStrategy
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

LOG_DIR_ENV = "DURASCOPE_CONF_LOG_DIR"
_write_lock = threading.Lock()


def log_path(log_dir: str | os.PathLike[str], execution_arn: str) -> Path:
    digest = hashlib.sha1(execution_arn.encode("utf-8")).hexdigest()
    return Path(log_dir) / f"{digest}.jsonl"


def emit(execution_arn: str | None, record: dict[str, Any]) -> None:
    """Append one log record for ``execution_arn`` (no-op without a log dir)."""
    log_dir = os.environ.get(LOG_DIR_ENV)
    if not log_dir or not execution_arn:
        return
    line = json.dumps({**record, "durableExecutionArn": execution_arn, "ts": time.time()}, default=str)
    path = log_path(log_dir, execution_arn)
    with _write_lock, path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_records(log_dir: str | os.PathLike[str], execution_arn: str) -> list[dict[str, Any]]:
    path = log_path(log_dir, execution_arn)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


class _SinkHandler(logging.Handler):
    """Routes SDK context-logger records (they carry ``executionArn``) to :func:`emit`."""

    def emit(self, record: logging.LogRecord) -> None:
        arn = getattr(record, "executionArn", None)
        rec: dict[str, Any] = {"message": record.getMessage(), "level": record.levelname}
        for key in ("operationId", "operationName", "attempt", "parentId"):
            if hasattr(record, key):
                rec[key] = getattr(record, key)
        emit(arn, rec)


def sink_logger() -> logging.Logger:
    """A stdlib logger suitable for ``DurableContext.set_logger``."""
    lg = logging.getLogger("durascope.conformance.sink")
    if not any(isinstance(h, _SinkHandler) for h in lg.handlers):
        lg.addHandler(_SinkHandler())
    lg.setLevel(logging.INFO)
    lg.propagate = False
    return lg


def arn_of(context: Any) -> str:
    """Execution ARN of a DurableContext."""
    return context.state.durable_execution_arn


def fixed_retry(max_attempts: int, delay: int = 1):
    """Retry strategy with a constant delay and no jitter."""
    return create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=max_attempts,
            initial_delay=Duration.from_seconds(delay),
            max_delay=Duration.from_seconds(delay),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )


def first_time(execution_arn: str, tag: str) -> bool:
    """True the first time it is called for (execution, tag), durable across processes."""
    log_dir = os.environ.get(LOG_DIR_ENV) or "/tmp"
    digest = hashlib.sha1(f"{execution_arn}|{tag}".encode()).hexdigest()
    marker = Path(log_dir) / f"marker-{digest}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def crash() -> None:
    """Simulate a runtime crash of the invocation (Lambda ``Runtime.ExitError``).

    In a worker process the process exits at once. When the handler runs inside
    the test process (in-process invoker) exiting would kill pytest, so a
    ``SystemExit`` is raised instead; an in-process invoker is expected to report
    it like a dead runtime.
    """
    main_pid = os.environ.get("DURASCOPE_CONF_MAIN_PID")
    if main_pid and int(main_pid) == os.getpid():
        raise SystemExit(1)
    os._exit(1)
