"""Long-running commands: ``serve``, ``engine``, ``worker`` and ``demo``."""

from __future__ import annotations

import signal
import sys
import threading

import click

from recorder.cli.app import durascope, friendly_errors, main, safe_url, settings_of


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-engine", is_flag=True, help="Serve the API and viewer only; another process runs the engine.")
@click.option(
    "--invoker",
    type=click.Choice(["workers", "in-process"]),
    default="workers",
    show_default=True,
    help="workers: each function runs in awslambdaric processes of its own, as in Lambda; "
    "in-process: handlers run on the engine's threads (fastest, no isolation).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, no_engine: bool, invoker: str) -> None:
    """Serve the Lambda-compatible API and the viewer, and run the engine and the webhook dispatcher."""
    from viewer.server import run_server

    settings = settings_of(ctx)
    with friendly_errors(settings.database_url):
        try:
            run_server(settings, host=host, port=port, run_engine=not no_engine, invoker=invoker)
        except OSError as exc:
            raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


@main.command("engine")
@click.pass_context
def engine_cmd(ctx: click.Context) -> None:
    """Run the engine in the foreground (invocations and timers), without the viewer."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with durascope(ctx, run_engine=True) as ds:
        click.echo(
            f"engine {ds.engine.owner if ds.engine else ''} running on {safe_url(ds.settings.database_url)}", err=True
        )
        sys.stderr.flush()
        stopped.wait()


@main.command("worker")
@click.option("--engine", "engine_url", required=True, help="URL of a durascope serve, e.g. http://10.0.0.5:8000")
@click.option("--function", "functions", multiple=True, help="Function to serve (repeatable; default: all registered).")
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=2, show_default=True, help="Runtime processes per function."
)
@click.option("--region", default="us-east-1", show_default=True)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a plain-http engine on another host (results, logs and "
    "checkpoints then cross the network unencrypted).",
)
def worker_cmd(engine_url: str, functions: tuple[str, ...], concurrency: int, region: str, insecure: bool) -> None:
    """Run handlers in awslambdaric processes for an engine reached over HTTP (any host)."""
    from recorder.worker import run_worker

    with friendly_errors():
        try:
            run_worker(engine_url, list(functions) or None, concurrency, region, insecure)
        except (OSError, RuntimeError) as exc:
            raise click.ClickException(f"cannot reach the engine at {engine_url}: {exc}") from None


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option(
    "--executions",
    type=click.IntRange(1, 1000),
    default=30,
    show_default=True,
    help="Executions in the batch (cycling through the demo scenarios).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample inputs.")
@click.option("--no-serve", is_flag=True, help="Run the batch until it settles, print a summary and exit.")
@click.option(
    "--settle-timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="With --no-serve: seconds to wait for the batch to settle.",
)
@click.pass_context
def demo(
    ctx: click.Context, host: str, port: int, executions: int, seed: int, no_serve: bool, settle_timeout: float
) -> None:
    """Register the sample workflows, start a mixed batch, answer its callbacks, and serve it."""
    from recorder.demo import run_batch, serve_demo

    settings = settings_of(ctx)
    if not no_serve:
        with friendly_errors(settings.database_url):
            try:
                serve_demo(settings, host, port, executions, seed, echo=click.echo)
            except OSError as exc:
                raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        return
    with durascope(ctx, run_engine=True) as ds:
        outcome = run_batch(ds, executions, seed, settle_timeout, echo=click.echo)
        click.echo(outcome.summary())
        if not outcome.ok:
            raise click.ClickException("the demo batch did not end as planned")
