"""error occurrences (a projection of the log) and full-text search over errors and log lines

``error_occurrences`` holds one row per failure in the log (recorder.store.error_index):
error groups aggregate it in SQL. Full-text search uses the database's own index, kept in
step by the database itself: on SQLite, FTS5 tables over ``error_occurrences`` and
``log_lines`` (external content, maintained by triggers); on PostgreSQL, GIN indexes on
the ``tsvector`` of the same text. The table is filled from the existing log here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The text both databases index; recorder.queries' search must use the same expressions.
PG_ERROR_DOCUMENT = ("to_tsvector('english', left(coalesce(message, '') || ' ' || coalesce(error_data, '') "
                     "|| ' ' || coalesce(stack_trace, ''), 100000))")
PG_LOG_DOCUMENT = "to_tsvector('english', left(message, 100000))"

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE error_search USING fts5(message, error_data, stack_trace, "
    "content='error_occurrences', content_rowid='position', tokenize='porter unicode61')",
    "CREATE TRIGGER error_search_ai AFTER INSERT ON error_occurrences BEGIN "
    "INSERT INTO error_search(rowid, message, error_data, stack_trace) "
    "VALUES (new.position, new.message, new.error_data, new.stack_trace); END",
    "CREATE TRIGGER error_search_ad AFTER DELETE ON error_occurrences BEGIN "
    "INSERT INTO error_search(error_search, rowid, message, error_data, stack_trace) "
    "VALUES ('delete', old.position, old.message, old.error_data, old.stack_trace); END",
    "CREATE VIRTUAL TABLE log_search USING fts5(message, content='log_lines', content_rowid='id', "
    "tokenize='porter unicode61')",
    "CREATE TRIGGER log_search_ai AFTER INSERT ON log_lines BEGIN "
    "INSERT INTO log_search(rowid, message) VALUES (new.id, new.message); END",
    "CREATE TRIGGER log_search_ad AFTER DELETE ON log_lines BEGIN "
    "INSERT INTO log_search(log_search, rowid, message) VALUES ('delete', old.id, old.message); END",
    "CREATE TRIGGER log_search_au AFTER UPDATE OF message ON log_lines BEGIN "
    "INSERT INTO log_search(log_search, rowid, message) VALUES ('delete', old.id, old.message); "
    "INSERT INTO log_search(rowid, message) VALUES (new.id, new.message); END",
    "INSERT INTO log_search(log_search) VALUES ('rebuild')",
]


def upgrade() -> None:
    op.create_table(
        "error_occurrences",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("function_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("op_id", sa.String(64), nullable=True),
        sa.Column("op_name", sa.String(256), nullable=True),
        sa.Column("error_type", sa.String(256), nullable=False),
        sa.Column("fingerprint", sa.String(512), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error_data", sa.Text(), nullable=True),
        sa.Column("stack_trace", sa.Text(), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_error_occurrences_ts", "error_occurrences", ["ts_ms"])
    op.create_index("ix_error_occurrences_function_ts", "error_occurrences", ["function_name", "ts_ms"])
    op.create_index("ix_error_occurrences_execution", "error_occurrences", ["execution_id"])
    op.create_index("ix_error_occurrences_group", "error_occurrences",
                    ["function_name", "error_type", "fingerprint", "ts_ms"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(f"CREATE INDEX ix_error_occurrences_fts ON error_occurrences USING gin ({PG_ERROR_DOCUMENT})")
        op.execute(f"CREATE INDEX ix_log_lines_fts ON log_lines USING gin ({PG_LOG_DOCUMENT})")
    from recorder.store.error_index import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("error_search_ai", "error_search_ad", "log_search_ai", "log_search_ad", "log_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS error_search")
        op.execute("DROP TABLE IF EXISTS log_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_log_lines_fts")
    op.drop_table("error_occurrences")
