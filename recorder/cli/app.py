"""The ``durascope`` group and what every command shares: the settings, errors as one
readable line, payloads from text or ``@file``, and output as a table or JSON.

Every command reads ``DURASCOPE_DATABASE_URL`` (default: ``durascope.db`` in the working
directory) unless ``--database-url`` is given. A failure is one line on stderr and exit
status 1 (2 for bad usage, as click does); never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from recorder.config import Settings
from recorder.errors import ServiceError
from recorder.store.db import SchemaOutdated
from recorder.store.vocabulary import LISTED_EXECUTION

F = TypeVar("F", bound=Callable[..., Any])
STATUSES = tuple(str(s) for s in LISTED_EXECUTION)


@click.group()
@click.option(
    "--database-url",
    envvar="DURASCOPE_DATABASE_URL",
    default=None,
    help="SQLite file URL or PostgreSQL URL (default: sqlite:///durascope.db).",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Durascope: run and inspect durable executions written with the AWS durable functions SDK."""
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else (plural_form or singular + 's')}"


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def check_database_url(url: str) -> None:
    """Refuse a URL that cannot be a store, and a SQLite file in a folder that does not exist
    (a new empty database there would look like lost data)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise click.ClickException(
            f"{url!r} is not a database URL: use sqlite:///path/to/durascope.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise click.ClickException(
                f"the folder {folder} does not exist: create it first, or check the "
                "database URL (a new, empty database there would look like lost data)"
            )


def settings_of(ctx: click.Context) -> Settings:
    url = ctx.obj.get("database_url") if ctx.obj else None
    with friendly_errors():
        settings = Settings.from_env(**({"database_url": url} if url else {}))
    check_database_url(settings.database_url)
    return settings


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def friendly_errors(database_url: str | None = None) -> Iterator[None]:
    """Errors users cause or meet (bad input, a missing execution, a database that cannot be
    opened) as one line; anything else is a bug and keeps its traceback."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    try:
        yield
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except SchemaOutdated as exc:
        raise click.ClickException(str(exc)) from None
    except (DBAPIError, NoSuchModuleError, ArgumentError) as exc:
        where = f" {safe_url(database_url)}" if database_url else ""
        raise click.ClickException(f"cannot use the database{where}: {_first_line(exc)}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def durascope(ctx: click.Context, run_engine: bool = False) -> Iterator[Any]:
    from recorder.api import Durascope

    settings = settings_of(ctx)
    with friendly_errors(settings.database_url):
        ds = Durascope(settings, run_engine=run_engine)
        try:
            yield ds
        finally:
            ds.close()


@contextmanager
def database(ctx: click.Context, check_schema: bool = True) -> Iterator[Any]:
    """The store alone, for commands that need no control plane (its schema checked unless
    the command is about the schema)."""
    from recorder.store.db import Database

    settings = settings_of(ctx)
    with friendly_errors(settings.database_url):
        db = Database(settings.database_url)
        try:
            if check_schema:
                db.check_schema(settings.auto_upgrade)
            yield db
        finally:
            db.dispose()


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def payload_text(value: str | None, option: str) -> str | None:
    """A JSON payload given as text or ``@file`` (``@-`` reads stdin), checked to be JSON."""
    if value is None:
        return None
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}", param_hint=option
            ) from None
    else:
        text = value
    try:
        json.loads(text)
    except ValueError as exc:
        where = f"{value[1:]} is" if value.startswith("@") else "it is"
        raise click.BadParameter(f"{where} not valid JSON: {exc}", param_hint=option) from None
    return text


def output_option(default: str = "table") -> Callable[[F], F]:
    """``--output table|json`` (and ``--json``, its old spelling) on a read command."""

    def decorate(f: F) -> F:
        f = click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --output json.")(f)
        return click.option(
            "--output",
            "-O",
            "output",
            type=click.Choice(["table", "json"]),
            default=default,
            show_default=True,
            help="Print a table for people or JSON for scripts.",
        )(f)

    return decorate


def wants_json(output: str, as_json: bool) -> bool:
    return as_json or output == "json"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    """Rows in aligned columns (the last column runs free), or ``empty`` when there are none."""
    if not rows:
        click.echo(empty)
        return
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    for r in cells:
        click.echo("  ".join([c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]).rstrip())
