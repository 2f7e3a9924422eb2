"""log lines say whether the SDK was replaying when they were written, and the attempt

``replay`` is true for a line written while the SDK replayed completed operations (the
handler runs from the start after every suspension, so its plain print/logging lines
repeat); ``attempt`` is the step attempt a line was written in. Lines captured before this
revision read as not replayed, attempt unknown. Plain ADD COLUMN (no table copy), so the
full-text triggers on ``log_lines`` stay in place on SQLite.

Revision ID: 0006b
Revises: 0006
Create Date: 2026-12-05 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006b'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('log_lines', sa.Column('replay', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('log_lines', sa.Column('attempt', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.drop_column('attempt')
        batch_op.drop_column('replay')
