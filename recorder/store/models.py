"""SQLAlchemy models: the event log, its projections, and engine bookkeeping.

* ``events`` is the log (append-only, enforced by triggers created in the migration).
  History events carry an ``event_id`` (1..n per execution, no gaps); engine records
  (invocation started, retry became READY, callback heartbeat) carry none and are never
  shown as AWS history, but they are state changes, so they live in the log too and a
  projection rebuild sees them.
* ``executions``, ``operations``, ``callbacks`` and ``timers`` are projections of the log,
  written in the same transaction as the events by ``recorder.store.projector``.
* ``engine_state`` is not a projection: checkpoint tokens, leases and "owed invocation"
  flags of the running control plane.
* ``functions`` is the function registry; ``log_lines`` holds captured handler output.

All instants are integer epoch milliseconds (``*_ms``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Identity, Index, Integer, String, Table, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's ``Table`` (``DeclarativeBase`` types ``__table__`` as the wider ``FromClause``)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Function(Base):
    __tablename__ = "functions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    handler: Mapped[str] = mapped_column(String(512))
    code_dir: Mapped[str | None] = mapped_column(Text)
    env_json: Mapped[str] = mapped_column(Text, default="{}")
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=900)
    execution_timeout_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    retention_days: Mapped[int] = mapped_column(Integer, default=14)
    concurrency: Mapped[int] = mapped_column(Integer, default=0)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("execution_id", "event_id", name="uq_events_execution_event_id"),
        Index("ix_events_execution_position", "execution_id", "position"),
        Index("ix_events_execution_type", "execution_id", "event_type"),
        # SQLite would otherwise hand the positions of a purged newest execution out again.
        {"sqlite_autoincrement": True},
    )

    # Global log position: monotonic across the store and gap-safe for readers
    # (appends are serialized; see recorder.store.log).
    position: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int | None] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(40))
    op_id: Mapped[str | None] = mapped_column(String(64))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    # The AWS history event (without EventId/EventTimestamp, which are columns).
    body: Mapped[str] = mapped_column(Text)
    # Engine-only facts the AWS shape has no room for (ReplayChildren, function, ...).
    extra: Mapped[str | None] = mapped_column(Text)


class PurgeGrant(Base):
    """A row here lets the retention purge delete one execution's events; nothing else may."""

    __tablename__ = "purge_grants"

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("function_name", "name", name="uq_executions_function_name"),
        Index("ix_executions_start", "start_ms", "execution_id"),
        Index("ix_executions_status_start", "status", "start_ms"),
        Index("ix_executions_function_start", "function_name", "start_ms"),
        Index("ix_executions_function_start_status", "function_name", "start_ms", "status"),
    )

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1024), unique=True)
    function_name: Mapped[str] = mapped_column(String(64))
    function_version: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    input_payload: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    error_json: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(256))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    execution_timeout: Mapped[int] = mapped_column(Integer)
    retention_days: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    last_ts_ms: Mapped[int] = mapped_column(BigInteger)
    invocation_count: Mapped[int] = mapped_column(Integer, default=0)
    op_count: Mapped[int] = mapped_column(Integer, default=0)
    parent_arn: Mapped[str | None] = mapped_column(String(1024))
    parent_op_id: Mapped[str | None] = mapped_column(String(64))
    imported: Mapped[bool] = mapped_column(Boolean, default=False)


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_seq", "execution_id", "seq"),
        Index("ix_operations_step_stats", "execution_id", "type", "name", "status", "attempt", "start_ms", "end_ms"),
    )

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    op_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Order of first START; the navigable state is returned in this order.
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    sub_type: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ms: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[str | None] = mapped_column(Text)
    error_json: Mapped[str | None] = mapped_column(Text)
    replay_children: Mapped[bool | None] = mapped_column(Boolean)
    # Type-specific details (ScheduledEnd, CallbackId, chained-invoke target...) as JSON.
    details_json: Mapped[str | None] = mapped_column(Text)


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_execution", "execution_id"),)

    callback_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(64))
    op_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_timeout_seconds: Mapped[int] = mapped_column(Integer, default=0)
    started_ms: Mapped[int] = mapped_column(BigInteger)
    last_heartbeat_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)


class Timer(Base):
    """A due time. Kinds: wait, retry, callback-timeout, callback-heartbeat,
    execution-timeout, purge. ``op_id`` is '' for execution-level timers."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "due_ms"),)

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    op_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_ms: Mapped[int] = mapped_column(BigInteger)


class EngineState(Base):
    """Control-plane bookkeeping for one execution (not a projection)."""

    __tablename__ = "engine_state"
    __table_args__ = (Index("ix_engine_state_wanted", "invoke_wanted", "next_invoke_ms"),)

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(256))
    token_seq: Mapped[int] = mapped_column(Integer, default=0)
    invocation_seq: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(64))
    invocation_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    invoke_wanted: Mapped[bool] = mapped_column(Boolean, default=False)
    next_invoke_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # Ops changed by the backend that the running invocation has not been sent yet.
    pending_ops_json: Mapped[str] = mapped_column(Text, default="[]")
    # Ops changed since the last invocation input (UpdatedOperationIds of the next one).
    updated_ops_json: Mapped[str] = mapped_column(Text, default="[]")
    changed_while_running: Mapped[bool] = mapped_column(Boolean, default=False)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    invalid_pending: Mapped[int] = mapped_column(Integer, default=0)
    last_client_token: Mapped[str | None] = mapped_column(String(256))
    last_client_inbound: Mapped[str | None] = mapped_column(String(256))
    last_client_response: Mapped[str | None] = mapped_column(Text)
    last_client_ms: Mapped[int | None] = mapped_column(BigInteger)


class LogLine(Base):
    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    op_id: Mapped[str | None] = mapped_column(String(64))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    logger: Mapped[str | None] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    # Written while the SDK replayed completed operations (recorder.engine.logs), and in which attempt.
    replay: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    attempt: Mapped[int | None] = mapped_column(Integer)


class ErrorOccurrence(Base):
    """One failure found in the log (a projection, ``recorder.store.error_index``): a failed
    step attempt, a failed or timed-out callback, a failed, timed-out or stopped execution.
    Keyed by the position of the event that recorded it, so a rebuild gives the same rows.
    ``fingerprint`` is the message with numbers, UUIDs, ARNs, hex ids and timestamps masked:
    error groups are (function, error type, fingerprint), aggregated in SQL. The migration adds
    the full-text index (FTS5 on SQLite, a GIN tsvector index on PostgreSQL)."""

    __tablename__ = "error_occurrences"
    __table_args__ = (
        Index("ix_error_occurrences_ts", "ts_ms"),
        Index("ix_error_occurrences_function_ts", "function_name", "ts_ms"),
        Index("ix_error_occurrences_execution", "execution_id"),
        Index("ix_error_occurrences_group", "function_name", "error_type", "fingerprint", "ts_ms"),
    )

    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    execution_id: Mapped[str] = mapped_column(String(64))
    function_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    op_id: Mapped[str | None] = mapped_column(String(64))
    op_name: Mapped[str | None] = mapped_column(String(256))
    error_type: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(512))
    message: Mapped[str] = mapped_column(Text)
    error_data: Mapped[str | None] = mapped_column(Text)
    stack_trace: Mapped[str | None] = mapped_column(Text)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
