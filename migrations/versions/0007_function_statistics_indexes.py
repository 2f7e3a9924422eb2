"""indexes for per-function statistics

The statistics of one function over a time window (``recorder.stats``) read its
executions by function and start time, counting them by status without visiting the rows
(``ix_executions_function_start_status`` covers that), each execution's steps from an
index alone (``ix_operations_step_stats``: type, name, status, attempt, start and end), and
each execution's ``InvocationCompleted`` events without reading its other events
(``ix_events_execution_type``).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05 17:30:00
"""
from alembic import op

revision = '0007'
down_revision = '0006b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain CREATE INDEX, not a batch: a batch may copy the table on SQLite, and the events
    # table's append-only triggers must stay as they are.
    op.create_index('ix_executions_function_start_status', 'executions', ['function_name', 'start_ms', 'status'],
                    unique=False)
    op.create_index('ix_events_execution_type', 'events', ['execution_id', 'event_type'], unique=False)
    op.create_index('ix_operations_step_stats', 'operations',
                    ['execution_id', 'type', 'name', 'status', 'attempt', 'start_ms', 'end_ms'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_operations_step_stats', table_name='operations')
    op.drop_index('ix_events_execution_type', table_name='events')
    op.drop_index('ix_executions_function_start_status', table_name='executions')
