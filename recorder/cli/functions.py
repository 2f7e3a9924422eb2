"""``durascope functions register|list``: the function registry. A handler is imported (in a
subprocess, from its code directory, with its environment) before it is registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from recorder.cli.app import durascope, echo_json, echo_table, main, output_option, wants_json

# Imports the handler as the runtime would, and says in one JSON line what went wrong.
_CHECK = """
import importlib, json, sys, traceback
module, attr = sys.argv[1], sys.argv[2]
try:
    handler = getattr(importlib.import_module(module), attr)
    if not callable(handler):
        raise TypeError(f"{module}.{attr} is not callable")
except BaseException as exc:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "where": where}))
    sys.exit(1)
"""


@main.group()
def functions() -> None:
    """The function registry."""


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected K=V, got {pair!r}", param_hint="--env")
        env[key] = value
    return env


def check_handler(module: str, attr: str, code_dir: str | None, env: dict[str, str]) -> None:
    """Import the handler in a fresh interpreter, from ``code_dir`` with ``env``; refuse it,
    saying why, when it does not import."""
    path = os.pathsep.join(p for p in (code_dir, os.environ.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHECK, module, attr],
            cwd=code_dir or None,
            env={**os.environ, **env, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise click.ClickException(
            f"importing {module} took more than 120 s; register with --no-check to skip the check"
        ) from None
    if proc.returncode == 0:
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    found = json.loads(lines[-1]) if lines else {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "where": ""}
    where = f" ({found['where']})" if found.get("where") else ""
    raise click.ClickException(
        f"the handler {module}.{attr} does not import{where}: {found['error']}; "
        "nothing was registered (--no-check skips this check)"
    )


@functions.command("register")
@click.argument("name")
@click.argument("handler")
@click.option(
    "--code-dir",
    type=click.Path(exists=True, file_okay=False, resolve_path=True),
    help="Directory put on sys.path to import the handler.",
)
@click.option("--env", "env_pairs", multiple=True, metavar="K=V", help="Environment variable (repeatable).")
@click.option(
    "--timeout", type=click.IntRange(1, 900), default=900, show_default=True, help="Invocation timeout in seconds."
)
@click.option(
    "--execution-timeout",
    type=click.IntRange(1, 31_622_400),
    default=None,
    help="Execution timeout in seconds (default 86400).",
)
@click.option(
    "--retention-days", type=click.IntRange(1, 90), default=None, help="Days a closed execution is kept (default 14)."
)
@click.option("--no-check", is_flag=True, help="Register without importing the handler first.")
@click.pass_context
def functions_register(
    ctx: click.Context,
    name: str,
    handler: str,
    code_dir: str | None,
    env_pairs: tuple[str, ...],
    timeout: int,
    execution_timeout: int | None,
    retention_days: int | None,
    no_check: bool,
) -> None:
    """Register NAME with HANDLER written as pkg.module.function or pkg.module:function."""
    from recorder.arns import NAME_RE
    from recorder.engine.invoker import split_handler

    env = _parse_env(env_pairs)
    try:
        module, attr = split_handler(handler)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HANDLER") from None
    if not NAME_RE.match(name):
        raise click.BadParameter("Function name must match [a-zA-Z0-9-_]{1,64}", param_hint="NAME")
    if not no_check:
        check_handler(module, attr, code_dir, env)
    with durascope(ctx) as ds:
        ds.register_function(
            name,
            handler,
            code_dir=code_dir,
            env=env,
            timeout=timeout,
            execution_timeout=execution_timeout,
            retention_days=retention_days,
        )
        click.echo(ds.control.function_arn(name))


@functions.command("list")
@output_option()
@click.pass_context
def functions_list(ctx: click.Context, output: str, as_json: bool) -> None:
    """List registered functions."""
    with durascope(ctx) as ds:
        specs = ds.control.list_functions()
        arns = {f.name: ds.control.function_arn(f.name) for f in specs}
    if wants_json(output, as_json):
        echo_json(
            [
                {
                    "FunctionName": f.name,
                    "FunctionArn": arns[f.name],
                    "Handler": f.handler,
                    "CodeDir": f.code_dir,
                    "Environment": f.env,
                    "Timeout": f.timeout,
                    "ExecutionTimeout": f.execution_timeout,
                    "RetentionPeriodInDays": f.retention_days,
                }
                for f in specs
            ]
        )
        return
    echo_table(
        ["NAME", "HANDLER", "TIMEOUT", "EXECUTION TIMEOUT", "RETENTION"],
        [(f.name, f.handler, f"{f.timeout} s", f"{f.execution_timeout} s", f"{f.retention_days} d") for f in specs],
        "no functions registered; add one with `durascope functions register NAME HANDLER`",
    )
