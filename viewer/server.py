"""``durascope serve``: the viewer and the API on one port, plus the engine and the webhook
dispatcher (``durascope demo`` serves through the same ``serve``).

The HTTP server is ``viewer.wsgiserver`` (cheroot with a head deadline, a connection cap
and a thread for every request in progress). To run the app under another WSGI server,
use ``viewer.create_app``; that server must pass the raw request URI (``REQUEST_URI`` or
``RAW_URI``), or ARNs fall back to the decoded-path heuristic (``viewer.rawpath``).
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from recorder.api import Durascope
from recorder.config import Settings
from viewer import create_app
from viewer.wsgiserver import ServerLimits, WSGIServer


def build_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    run_engine: bool = True,
    durascope: Durascope | None = None,
    invoker: str = "in-process",
    local_workers: bool = True,
) -> tuple[WSGIServer, Durascope]:
    """Open the store (and the engine), build the app and bind the server.
    ``port=0`` picks a free port (``server.server_port``). The caller closes both.
    With ``invoker="workers"`` handlers run in local worker processes that reach this
    server's API (their checkpoints go through it, over HTTP)."""
    ds = durascope if durascope is not None else Durascope(settings, run_engine=run_engine, invoker=invoker)
    try:
        app = create_app(settings, durascope=ds, bind_host=host)
        server = WSGIServer(app, host, port, ServerLimits.from_settings(settings))
        if local_workers and ds.workers is not None and ds.local_workers is None:
            ds.set_engine_url(f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{server.server_port}")
    except BaseException:
        if durascope is None:
            ds.close()
        raise
    return server, ds


def run_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    run_engine: bool = True,
    invoker: str = "in-process",
    durascope: Durascope | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting, stop the engine and close the store."""
    server, ds = build_server(settings, host, port, run_engine, durascope=durascope, invoker=invoker)
    try:
        serve(server, ds, settings, host)
    finally:
        if durascope is None:
            ds.close()


def serve(
    server: WSGIServer, ds: Durascope, settings: Settings, host: str, ready: Callable[[str], None] | None = None
) -> None:
    """What ``durascope serve`` runs once its server is bound (``durascope demo`` too): the
    webhook dispatcher beside the engine, the warnings, then requests until SIGINT/SIGTERM.
    ``ready(url)`` runs once everything is up, before the first request is served."""
    from recorder.followers.dispatcher import Dispatcher  # webhook deliveries run beside the engine

    dispatcher = Dispatcher(ds.db, settings) if ds.engine is not None else None
    if dispatcher is not None:
        dispatcher.start()
    stopping = threading.Event()

    def _stop(*_: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return: call it off the serving thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    engine = "with engine" if ds.engine is not None else "without engine"
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.access_keys:
        print(
            f"WARNING: listening on {host} without authentication: anyone who can reach this port can start, "
            "stop and read executions. Set DURASCOPE_ACCESS_KEYS=id:secret to require SigV4-signed requests.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"durascope serving http://{host}:{server.server_port} ({engine}) on {safe_url(settings.database_url)}",
        file=sys.stderr,
        flush=True,
    )
    try:
        freeze_startup_heap()
        if ready is not None:
            ready(f"http://{host}:{server.server_port}")
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        if dispatcher is not None:
            dispatcher.stop()


def freeze_startup_heap() -> None:
    """Put what startup allocated (the imports, the app, SQLAlchemy's, Flask's and botocore's
    caches: some 140,000 objects) out of the garbage collector's sight, as servers that fork
    do. A full collection otherwise walks all of them each time: 47 ms, which in
    ``bench/workers_bench.py``'s W4 came to 0.5 ms of engine CPU an execution. Garbage is
    collected first, so none of it is kept for good."""
    gc.collect()
    gc.freeze()


def safe_url(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
