"""positions are never reused on SQLite; drop two things nothing reads

* SQLite: ``events.position`` becomes ``INTEGER PRIMARY KEY AUTOINCREMENT``. A plain
  rowid alias hands out max(position)+1, so deleting the newest execution (the purge,
  DeleteDurableExecution) gave its positions to the next events, and a follower that
  had already passed them never saw those events. AUTOINCREMENT keeps the high-water
  mark in ``sqlite_sequence``. PostgreSQL's identity sequence never reused values.
  SQLite cannot change a primary key in place, so the table is copied (positions kept)
  and its index and append-only triggers are created again.
* ``operations.changed_position`` was written on every change and never read
  (checkpoint deltas come from ``engine_state.pending_ops_json``), and the ``meta``
  table was never used.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = "position, execution_id, event_id, event_type, op_id, ts_ms, body, extra"

_SQLITE_EVENTS = """CREATE TABLE events_new (
    position INTEGER NOT NULL PRIMARY KEY {autoincrement},
    execution_id VARCHAR(64) NOT NULL,
    event_id INTEGER,
    event_type VARCHAR(40) NOT NULL,
    op_id VARCHAR(64),
    ts_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    extra TEXT,
    CONSTRAINT uq_events_execution_event_id UNIQUE (execution_id, event_id)
)"""

# The same triggers as revision 0001 (a revision must not import another).
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       WHEN NOT EXISTS (SELECT 1 FROM purge_grants WHERE execution_id = OLD.execution_id)
       BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused outside the retention purge'); END""",
]


def _rebuild_sqlite_events(autoincrement: bool) -> None:
    # pysqlite runs DDL outside a transaction until the first INSERT opens one, so an
    # interrupted run can leave the copy behind; a second run starts over.
    op.execute("DROP TABLE IF EXISTS events_new")
    op.execute("DROP TRIGGER IF EXISTS events_no_update")
    op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    op.execute(_SQLITE_EVENTS.format(autoincrement="AUTOINCREMENT" if autoincrement else ""))
    op.execute(f"INSERT INTO events_new ({_COLUMNS}) SELECT {_COLUMNS} FROM events ORDER BY position")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_new RENAME TO events")
    op.execute("CREATE INDEX ix_events_execution_position ON events (execution_id, position)")
    for statement in _SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_events(autoincrement=True)
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("changed_position")
    op.drop_table("meta")


def downgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_position", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_events(autoincrement=False)
