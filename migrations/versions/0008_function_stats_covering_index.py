"""execution-level function statistics from one covering index

``ix_executions_function_start_status`` (0007) let the statistics count a function's
executions by status without visiting the rows; the same figures also sum durations and
invocations, so the index now carries ``end_ms`` and ``invocation_count`` too and replaces
it (``ix_executions_function_stats``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:55:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_executions_function_stats",
        "executions",
        ["function_name", "start_ms", "status", "end_ms", "invocation_count"],
        unique=False,
    )
    op.drop_index("ix_executions_function_start_status", table_name="executions")


def downgrade() -> None:
    op.create_index(
        "ix_executions_function_start_status", "executions", ["function_name", "start_ms", "status"], unique=False
    )
    op.drop_index("ix_executions_function_stats", table_name="executions")
