"""Log lines written in worker processes carry the tags in-process lines carry (issue 18,
point 5), on SQLite and PostgreSQL: the operation (and attempt) running when a line was
written and whether the SDK was replaying, through the runtime's tagged channel
(``recorder.runtime_process``), the worker host and the engine's store, for the workers
``serve`` starts and for a ``durascope worker`` host over HTTP alike."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from tests.conftest import HANDLERS
from tests.test_logs_across_replays import _check_tags, _lines, _ops
from viewer import create_app


def _site(database_url: str, local_workers: bool) -> Iterator[tuple[Durascope, str]]:
    from viewer.server import build_server

    server, ds = build_server(Settings.from_env(database_url=database_url, worker_concurrency=1), port=0,
                              invoker="workers", local_workers=local_workers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ds, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


@pytest.fixture
def worker_site(database_url: str) -> Iterator[Durascope]:
    for ds, _ in _site(database_url, local_workers=True):
        yield ds


def _chatty(ds: Durascope) -> str:
    ds.register_function("chatty", "th_insight.chatty", code_dir=HANDLERS)
    arn = ds.start("chatty", "{}", name="chatty-in-a-worker")
    done = ds.wait(arn, 90)
    assert done.status == "SUCCEEDED", done.error
    return arn


def test_lines_from_worker_processes_carry_operation_attempt_and_replay(worker_site: Durascope) -> None:
    ds = worker_site
    arn = _chatty(ds)
    client = create_app(durascope=ds).test_client()
    _check_tags(ds, client, arn)
    # The runtime's own log records (awslambdaric writes them to stdout) are tagged too:
    # the SDK's line about the failed first attempt of "second" is among that attempt's lines.
    second = _ops(ds, arn)["second"]
    own = [r["message"] for r in _lines(client, arn, op=second, attempt="1")]
    assert own[0] == "inside second, attempt 1" and any("failed step for id" in m for m in own), own
    assert [r["message"] for r in _lines(client, arn, op=second, attempt="2")] == ["inside second, attempt 2"]


def test_the_logs_page_of_a_worker_execution_hides_replays(worker_site: Durascope) -> None:
    ds = worker_site
    arn = _chatty(ds)
    client = create_app(durascope=ds).test_client()
    base = f"/executions/{quote(arn, safe='/:')}"
    page = client.get(f"{base}/logs").get_data(as_text=True)
    assert "3 lines written while the SDK replayed earlier invocations are hidden" in page
    assert page.count('<pre class="msg">starting</pre>') == 1 and 'class="badge replay"' not in page
    shown = client.get(f"{base}/logs?replay=show").get_data(as_text=True)
    assert shown.count('<pre class="msg">starting</pre>') == 3 and shown.count('class="badge replay"') == 3


def test_a_remote_worker_host_relays_the_tags(database_url: str, tmp_path: Path) -> None:
    for ds, url in _site(database_url, local_workers=False):
        log = (tmp_path / "worker.log").open("wb")
        ds.register_function("chatty", "th_insight.chatty", code_dir=HANDLERS)
        worker = subprocess.Popen([sys.executable, "-m", "recorder.cli", "worker", "--engine", url,
                                   "--function", "chatty", "--concurrency", "1"], stdout=log, stderr=subprocess.STDOUT)
        try:
            arn = ds.start("chatty", "{}", name="chatty-on-a-remote-worker")
            done = ds.wait(arn, 90)
            assert done.status == "SUCCEEDED", (done.error, (tmp_path / "worker.log").read_text())
            _check_tags(ds, create_app(durascope=ds).test_client(), arn)
        finally:
            worker.terminate()
            worker.wait(15)
