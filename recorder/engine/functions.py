"""The function registry: what each registered function runs, cached per process."""

from __future__ import annotations

import json
import threading

from sqlalchemy import Connection, insert, select, update

from recorder.arns import NAME_RE, function_arn, parse_function_name
from recorder.config import Settings
from recorder.engine.boundary import FunctionSpec, now_ms
from recorder.errors import InvalidParameterValueException, ResourceNotFoundException
from recorder.store.db import Database
from recorder.store.models import Function, table_of


class FunctionRegistry:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._cache: dict[str, FunctionSpec] = {}
        self._lock = threading.Lock()

    def register(self, spec: FunctionSpec) -> None:
        if not NAME_RE.match(spec.name):
            raise InvalidParameterValueException("Function name must match [a-zA-Z0-9-_]{1,64}")
        if not spec.handler or len(spec.handler) > 512:
            raise InvalidParameterValueException("Handler must be given as pkg.module.function or pkg.module:function")
        for label, value, lo, hi in (
            ("timeout", spec.timeout, 1, 900),
            ("execution timeout", spec.execution_timeout, 1, 31_622_400),
            ("retention days", spec.retention_days, 1, 90),
        ):
            if not lo <= value <= hi:
                raise InvalidParameterValueException(f"{label} must be from {lo} to {hi}, got {value}")
        now = now_ms()
        values = {
            "handler": spec.handler,
            "code_dir": spec.code_dir,
            "env_json": json.dumps(spec.env, sort_keys=True),
            "timeout_seconds": spec.timeout,
            "execution_timeout_seconds": spec.execution_timeout,
            "retention_days": spec.retention_days,
            "concurrency": spec.concurrency,
            "updated_ms": now,
        }
        table = table_of(Function)
        with self.db.write() as conn:
            exists = conn.execute(select(table.c.name).where(table.c.name == spec.name)).first()
            if exists:
                conn.execute(update(table).where(table.c.name == spec.name).values(values))
            else:
                conn.execute(insert(table).values(name=spec.name, created_ms=now, **values))
        with self._lock:
            self._cache.pop(spec.name, None)

    def list(self) -> list[FunctionSpec]:
        with self.db.read() as s:
            return [FunctionSpec.from_row(r) for r in s.scalars(select(Function).order_by(Function.name))]

    def get(self, name: str, conn: Connection | None = None) -> FunctionSpec | None:
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        table = table_of(Function)
        stmt = select(table).where(table.c.name == name)
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self.db.read() as s:
                row = s.execute(stmt).first()
        spec = FunctionSpec.from_row(row) if row else None
        if spec is not None:
            with self._lock:
                self._cache[name] = spec
        return spec

    def arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.settings.region, self.settings.account_id, name, qualifier)

    def served(self, function: str, qualifier: str | None = None, conn: Connection | None = None) -> FunctionSpec:
        """The registered function a request names (a name, a partial or a full ARN), if
        this engine serves it: only ``$LATEST``, which an unqualified name means. The one
        place that decides; anything else is ResourceNotFoundException."""
        ref = parse_function_name(function)
        version = qualifier or ref.qualifier
        spec = self.get(ref.name, conn) if version in (None, "$LATEST") else None
        if spec is None:
            suffix = "" if version in (None, "$LATEST") else " (only $LATEST is served)"
            raise ResourceNotFoundException(f"Function not found: {self.arn(ref.name, version)}{suffix}")
        return spec
