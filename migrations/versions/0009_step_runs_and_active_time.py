"""statistics without the wide join or the events' JSON: step runs and active time

``executions.active_ms`` holds the invocations' summed durations (the InvocationCompleted
events), so statistics and cost no longer read the JSON of every such event; the covering
index ``ix_executions_function_stats`` carries it too. ``step_runs`` is a narrow projection
of the STEP operations (function, the execution's start, name, duration, retries, failed)
with one covering index, so a function's step figures are one index range scan instead of
a join of executions to the wide operations rows. Both are projections: the projector
keeps them and ``durascope db rebuild-projections`` re-derives them; here they are filled
from the existing rows (active time from the events, as the projector computes it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("active_ms", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "step_runs",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("op_id", sa.String(64), primary_key=True),
        sa.Column("function_name", sa.String(64), nullable=False),
        sa.Column("exec_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        start, end = (
            f"CAST(CAST(ev.body AS json) -> 'InvocationCompletedDetails' ->> '{f}' AS BIGINT)"
            for f in ("StartTimestamp", "EndTimestamp")
        )
    else:
        start, end = (
            f"CAST(json_extract(ev.body, '$.InvocationCompletedDetails.{f}') AS INTEGER)"
            for f in ("StartTimestamp", "EndTimestamp")
        )
    op.execute(
        f"UPDATE executions SET active_ms = COALESCE((SELECT SUM({end} - {start}) FROM events ev "
        "WHERE ev.execution_id = executions.execution_id AND ev.event_type = 'InvocationCompleted'), 0)"
    )
    op.execute(
        "INSERT INTO step_runs (execution_id, op_id, function_name, exec_start_ms, name, duration_ms, retries, failed) "
        "SELECT o.execution_id, o.op_id, e.function_name, e.start_ms, o.name, o.end_ms - o.start_ms, "
        "CASE WHEN o.attempt > 1 THEN o.attempt - 1 ELSE 0 END, CASE WHEN o.status = 'FAILED' THEN 1 ELSE 0 END "
        "FROM operations o JOIN executions e ON e.execution_id = o.execution_id WHERE o.type = 'STEP'"
    )
    # After the backfill: building an index once is cheaper than keeping it up row by row.
    op.create_index(
        "ix_step_runs_stats",
        "step_runs",
        ["function_name", "exec_start_ms", "name", "duration_ms", "retries", "failed"],
    )
    op.drop_index("ix_executions_function_stats", table_name="executions")
    op.create_index(
        "ix_executions_function_stats",
        "executions",
        ["function_name", "start_ms", "status", "end_ms", "invocation_count", "active_ms"],
    )
    if postgres:
        op.execute("ANALYZE step_runs")


def downgrade() -> None:
    op.drop_index("ix_executions_function_stats", table_name="executions")
    op.create_index(
        "ix_executions_function_stats",
        "executions",
        ["function_name", "start_ms", "status", "end_ms", "invocation_count"],
    )
    op.drop_table("step_runs")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("active_ms")
