"""initial schema, with the triggers that make the event log append-only

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:24:39.827814
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("callback_id", sa.String(length=1024), nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("op_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("heartbeat_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_heartbeat_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("callback_id"),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index("ix_callbacks_execution", ["execution_id"], unique=False)

    op.create_table(
        "engine_state",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=256), nullable=True),
        sa.Column("token_seq", sa.Integer(), nullable=False),
        sa.Column("invocation_seq", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("invocation_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("invoke_wanted", sa.Boolean(), nullable=False),
        sa.Column("next_invoke_ms", sa.BigInteger(), nullable=False),
        sa.Column("pending_ops_json", sa.Text(), nullable=False),
        sa.Column("updated_ops_json", sa.Text(), nullable=False),
        sa.Column("changed_while_running", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("invalid_pending", sa.Integer(), nullable=False),
        sa.Column("last_client_token", sa.String(length=256), nullable=True),
        sa.Column("last_client_inbound", sa.String(length=256), nullable=True),
        sa.Column("last_client_response", sa.Text(), nullable=True),
        sa.Column("last_client_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.create_index("ix_engine_state_wanted", ["invoke_wanted", "next_invoke_ms"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(always=False), nullable=False
        ),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("op_id", sa.String(length=64), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("position"),
        sa.UniqueConstraint("execution_id", "event_id", name="uq_events_execution_event_id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_execution_position", ["execution_id", "position"], unique=False)

    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("arn", sa.String(length=1024), nullable=False),
        sa.Column("function_name", sa.String(length=64), nullable=False),
        sa.Column("function_version", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_payload", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error_json", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=256), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("execution_timeout", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("last_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("invocation_count", sa.Integer(), nullable=False),
        sa.Column("op_count", sa.Integer(), nullable=False),
        sa.Column("parent_arn", sa.String(length=1024), nullable=True),
        sa.Column("parent_op_id", sa.String(length=64), nullable=True),
        sa.Column("imported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id"),
        sa.UniqueConstraint("arn"),
        sa.UniqueConstraint("function_name", "name", name="uq_executions_function_name"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_function_start", ["function_name", "start_ms"], unique=False)
        batch_op.create_index("ix_executions_start", ["start_ms", "execution_id"], unique=False)
        batch_op.create_index("ix_executions_status_start", ["status", "start_ms"], unique=False)

    op.create_table(
        "functions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=512), nullable=False),
        sa.Column("code_dir", sa.Text(), nullable=True),
        sa.Column("env_json", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("execution_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "log_lines",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(always=False), nullable=False
        ),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("op_id", sa.String(length=64), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("logger", sa.String(length=256), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.create_index("ix_log_lines_execution", ["execution_id", "id"], unique=False)

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "operations",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("op_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("sub_type", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error_json", sa.Text(), nullable=True),
        sa.Column("replay_children", sa.Boolean(), nullable=True),
        sa.Column("details_json", sa.Text(), nullable=True),
        sa.Column("changed_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "op_id"),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index("ix_operations_seq", ["execution_id", "seq"], unique=False)

    op.create_table(
        "purge_grants",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    op.create_table(
        "timers",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("op_id", sa.String(length=64), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "kind", "op_id"),
    )
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.create_index("ix_timers_due", ["due_ms"], unique=False)

    _create_append_only_triggers()


# UPDATE of an event is always refused. DELETE is refused unless the deleting
# transaction holds a purge grant for that execution: the retention purge
# (recorder.store.log.purge_execution) is the one path that writes such grants.
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       WHEN NOT EXISTS (SELECT 1 FROM purge_grants WHERE execution_id = OLD.execution_id)
       BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused outside the retention purge'); END""",
]

_PG_TRIGGERS = [
    """CREATE FUNCTION events_append_only() RETURNS trigger AS $$
       BEGIN
         IF TG_OP = 'UPDATE' THEN
           RAISE EXCEPTION 'events are append-only: UPDATE refused';
         END IF;
         IF NOT EXISTS (SELECT 1 FROM purge_grants WHERE execution_id = OLD.execution_id) THEN
           RAISE EXCEPTION 'events are append-only: DELETE refused outside the retention purge';
         END IF;
         RETURN OLD;
       END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
    # TRUNCATE bypasses row triggers; refuse it too.
    """CREATE FUNCTION events_no_truncate() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'events are append-only: TRUNCATE refused'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
       FOR EACH STATEMENT EXECUTE FUNCTION events_no_truncate()""",
]


def _create_append_only_triggers() -> None:
    statements = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_no_update ON events")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete ON events")
        op.execute("DROP FUNCTION IF EXISTS events_no_truncate()")
        op.execute("DROP FUNCTION IF EXISTS events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index("ix_timers_due")

    op.drop_table("timers")
    op.drop_table("purge_grants")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_seq")

    op.drop_table("operations")
    op.drop_table("meta")
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_log_lines_execution")

    op.drop_table("log_lines")
    op.drop_table("functions")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_status_start")
        batch_op.drop_index("ix_executions_start")
        batch_op.drop_index("ix_executions_function_start")

    op.drop_table("executions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_execution_position")

    op.drop_table("events")
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.drop_index("ix_engine_state_wanted")

    op.drop_table("engine_state")
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_callbacks_execution")

    op.drop_table("callbacks")
