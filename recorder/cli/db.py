"""``durascope db``: the schema and the projections."""

from __future__ import annotations

import click

from recorder.cli.app import database, durascope, main


@main.group()
def db() -> None:
    """Schema and projections."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the schema to the latest revision (Alembic)."""
    with database(ctx, check_schema=False) as store:
        store.upgrade()
        click.echo(f"schema at revision {store.current_revision()}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database and the one this version needs."""
    with database(ctx, check_schema=False) as store:
        click.echo(f"database: {store.current_revision() or 'empty'}; needed: {store.head_revision()}")


@db.command("rebuild-projections")
@click.pass_context
def db_rebuild(ctx: click.Context) -> None:
    """Recompute executions, operations, callbacks, timers and error occurrences from the event log."""
    from recorder.store.projector import rebuild

    with durascope(ctx) as ds:
        with ds.db.write() as s:
            count = rebuild(s)
        click.echo(f"rebuilt projections from {count} log records")
