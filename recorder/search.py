"""Full-text search over error messages, error data, stack traces and captured log lines,
with the database's own index (migration 0006): FTS5 on SQLite, a GIN ``tsvector`` index
on PostgreSQL. The query is words, all of which must match (stemmed: "declined" finds
"decline"); anything else in it is ignored, so no input is a syntax error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

RESULT_LIMIT = 50
MAX_TERMS = 16
# The same expressions as the migration's indexes: PostgreSQL uses an index on an
# expression only for a query that repeats it.
PG_ERROR_DOCUMENT = ("to_tsvector('english', left(coalesce(o.message, '') || ' ' || coalesce(o.error_data, '') "
                     "|| ' ' || coalesce(o.stack_trace, ''), 100000))")
PG_LOG_DOCUMENT = "to_tsvector('english', left(l.message, 100000))"
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(query: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_TERMS]


@dataclass(frozen=True)
class ErrorHit:
    execution_arn: str
    execution_name: str
    function: str
    kind: str
    operation_id: str | None
    operation_name: str | None
    error_type: str
    message: str
    ts_ms: int


@dataclass(frozen=True)
class LogHit:
    execution_arn: str
    execution_name: str
    function: str
    line_id: int
    operation_id: str | None
    level: str
    message: str
    ts_ms: int


@dataclass(frozen=True)
class SearchResults:
    terms: tuple[str, ...]
    errors: tuple[ErrorHit, ...]
    logs: tuple[LogHit, ...]


def search(conn: Connection | Session, sqlite: bool, query: str, limit: int = RESULT_LIMIT) -> SearchResults:
    words = terms(query)
    if not words:
        return SearchResults((), (), ())
    if sqlite:
        # Each word quoted: FTS5 reads it as a plain token, never as an operator.
        params = {"q": " ".join(f'"{w}"' for w in words), "limit": limit}
        error_match = "o.position IN (SELECT rowid FROM error_search WHERE error_search MATCH :q)"
        log_match = "l.id IN (SELECT rowid FROM log_search WHERE log_search MATCH :q)"
    else:
        # plainto_tsquery parses the text as the index parsed the documents ("handler.py" is
        # one token there) and reads no operators.
        params = {"q": query, "limit": limit}
        error_match = f"{PG_ERROR_DOCUMENT} @@ plainto_tsquery('english', :q)"
        log_match = f"{PG_LOG_DOCUMENT} @@ plainto_tsquery('english', :q)"
    errors = tuple(
        ErrorHit(r.arn, r.name, r.function_name, r.kind, r.op_id, r.op_name, r.error_type, r.message, r.ts_ms)
        for r in conn.execute(text(
            "SELECT x.arn, x.name, o.function_name, o.kind, o.op_id, o.op_name, o.error_type, o.message, o.ts_ms "
            f"FROM error_occurrences o JOIN executions x ON x.execution_id = o.execution_id WHERE {error_match} "
            "ORDER BY o.ts_ms DESC, o.position DESC LIMIT :limit"), params))
    logs = tuple(
        LogHit(r.arn, r.name, r.function_name, r.id, r.op_id, r.level, r.message, r.ts_ms)
        for r in conn.execute(text(
            "SELECT x.arn, x.name, x.function_name, l.id, l.op_id, l.level, l.message, l.ts_ms "
            f"FROM log_lines l JOIN executions x ON x.execution_id = l.execution_id WHERE {log_match} "
            "ORDER BY l.ts_ms DESC, l.id DESC LIMIT :limit"), params))
    return SearchResults(words, errors, logs)
