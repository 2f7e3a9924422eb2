"""Settings, read once from ``DURASCOPE_*`` environment variables.

Every setting has a default that works on one laptop: a SQLite file in the working
directory, region ``us-east-1`` and a fixed dummy account id, so ARNs look like the
ones users see in AWS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///durascope.db"


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be a whole number, got {raw!r}") from exc


def _float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {raw!r}") from exc


def _access_keys(text: str | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key_id, sep, secret = item.strip().partition(":")
        if not sep or not key_id or not secret:
            raise ValueError("DURASCOPE_ACCESS_KEYS must be id:secret[,id:secret]")
        keys[key_id] = secret
    return keys


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # How long an engine owns an in-flight invocation without renewing its lease.
    lease_seconds: float = 30.0
    # In-process invocations running at once (the SDK idles ~100 ms at the end of
    # each invocation, so throughput needs many executions in flight).
    max_concurrent_invocations: int = 64
    # In-process handlers run on threads of the engine (0) or in this many child
    # interpreters that checkpoint through the engine over a pipe, so the SDK's work
    # and the control plane's use more than one core (recorder.engine.processes).
    invoker_processes: int = 0
    # Consecutive failed invocations (handler crash) before the execution fails.
    max_invocation_attempts: int = 5
    invocation_retry_seconds: float = 1.0
    default_execution_timeout: int = 86400
    default_retention_days: int = 14
    auto_upgrade: bool = True
    # Runtime processes per function when handlers run in worker processes.
    worker_concurrency: int = 2
    # DURASCOPE_ACCESS_KEYS=id:secret[,id:secret]: when set, every API request must be
    # SigV4-signed with one of them (and the viewer asks for a login).
    access_keys: dict[str, str] = field(default_factory=dict)
    # DURASCOPE_ALLOWED_HOSTS=name[,name]: Host names the server answers besides loopback,
    # IP literals and its own names ("*" for any, ".example.com" for its subdomains).
    allowed_hosts: tuple[str, ...] = ()
    # How long a viewer login lasts (the server ends it sooner at logout).
    session_hours: float = 8.0
    # The HTTP server (viewer.wsgiserver): connections open at once (one more is answered
    # 503), and how long a request's head (request line and headers) may take to arrive.
    max_connections: int = 1000
    head_timeout_seconds: float = 10.0
    # Server-Sent Event streams (/api/v1/feed) open at once, in total and per client address.
    max_streams: int = 64
    max_streams_per_client: int = 8
    # Cost estimates (recorder.cost): DURASCOPE_COST_PRICES overrides prices of its table
    # (JSON), DURASCOPE_COST_MEMORY_MB the memory each function is billed at (fn=MB,*=MB).
    cost_prices: dict[str, float] = field(default_factory=dict)
    cost_memory_mb: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        from recorder import prices

        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {
            "database_url": env.get("DURASCOPE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "region": env.get("DURASCOPE_REGION") or "us-east-1",
            "account_id": env.get("DURASCOPE_ACCOUNT_ID") or "123456789012",
            "lease_seconds": _float(env, "DURASCOPE_LEASE_SECONDS", 30.0),
            "max_concurrent_invocations": _int(env, "DURASCOPE_MAX_CONCURRENT_INVOCATIONS", 64),
            "invoker_processes": _int(env, "DURASCOPE_INVOKER_PROCESSES", 0),
            "max_invocation_attempts": _int(env, "DURASCOPE_MAX_INVOCATION_ATTEMPTS", 5),
            "invocation_retry_seconds": _float(env, "DURASCOPE_INVOCATION_RETRY_SECONDS", 1.0),
            "default_execution_timeout": _int(env, "DURASCOPE_DEFAULT_EXECUTION_TIMEOUT", 86400),
            "default_retention_days": _int(env, "DURASCOPE_DEFAULT_RETENTION_DAYS", 14),
            "auto_upgrade": env.get("DURASCOPE_AUTO_UPGRADE", "1") not in ("0", "false", "no"),
            "worker_concurrency": _int(env, "DURASCOPE_WORKER_CONCURRENCY", 2),
            "access_keys": _access_keys(env.get("DURASCOPE_ACCESS_KEYS")),
            "session_hours": _float(env, "DURASCOPE_SESSION_HOURS", 8.0),
            "allowed_hosts": tuple(h.strip() for h in (env.get("DURASCOPE_ALLOWED_HOSTS") or "").split(",") if h.strip()),
            "max_connections": _int(env, "DURASCOPE_MAX_CONNECTIONS", 1000),
            "head_timeout_seconds": _float(env, "DURASCOPE_HEAD_TIMEOUT_SECONDS", 10.0),
            "max_streams": _int(env, "DURASCOPE_MAX_STREAMS", 64),
            "max_streams_per_client": _int(env, "DURASCOPE_MAX_STREAMS_PER_CLIENT", 8),
            "cost_prices": prices.parse_price_overrides(env.get("DURASCOPE_COST_PRICES")),
            "cost_memory_mb": prices.parse_memory_sizes(env.get("DURASCOPE_COST_MEMORY_MB")),
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if not 0 <= settings.invoker_processes <= 64:
            raise ValueError(f"DURASCOPE_INVOKER_PROCESSES must be between 0 and 64, got {settings.invoker_processes}")
        for key, value in (("DURASCOPE_MAX_CONNECTIONS", settings.max_connections),
                           ("DURASCOPE_MAX_STREAMS", settings.max_streams),
                           ("DURASCOPE_MAX_STREAMS_PER_CLIENT", settings.max_streams_per_client)):
            if value < 1:
                raise ValueError(f"{key} must be at least 1, got {value}")
        if not settings.head_timeout_seconds > 0:
            raise ValueError(f"DURASCOPE_HEAD_TIMEOUT_SECONDS must be above 0, got {settings.head_timeout_seconds}")
        return settings
