"""webhook subscriptions remember since when every attempt has failed

A subscription is disabled after a stretch of consecutive failure measured in time
(``DURASCOPE_WEBHOOKS_DISABLE_AFTER_SECONDS``), not after a count of attempts: the count
grew with every claim and disabled a subscription whose receiver was down for seconds.
``failing_since_ms`` is the time of the first failed attempt after the last success
(NULL while the receiver answers).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("failing_since_ms")
