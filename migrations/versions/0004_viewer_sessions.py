"""viewer login sessions kept by the server (logout ends a session on every engine)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "viewer_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_viewer_sessions_expires", "viewer_sessions", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_viewer_sessions_expires", table_name="viewer_sessions")
    op.drop_table("viewer_sessions")
