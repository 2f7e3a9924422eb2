"""Log lines written in worker processes carry the tags in-process lines carry (issue 18,
point 5), on SQLite and PostgreSQL: the operation (and attempt) running when a line was
written and whether the SDK was replaying, through the runtime's tagged channel
(``recorder.runtime_process``), the worker host and the engine's store, for the workers
``serve`` starts and for a ``durascope worker`` host over HTTP alike."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.queries import execution_logs
from recorder.runtime_process import Output
from tests.conftest import HANDLERS, remote_worker, running_server
from tests.security.test_workers_hardening import _engine
from tests.test_logs_across_replays import _check_tags, _lines, _ops, check_page_hides_replays
from viewer import create_app


def _settings(database_url: str) -> Settings:
    return Settings.from_env(database_url=database_url, worker_concurrency=1)


@pytest.fixture
def worker_site(database_url: str) -> Iterator[Durascope]:
    with running_server(_settings(database_url), invoker="workers") as (_, ds):
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
    arn = _chatty(worker_site)
    check_page_hides_replays(create_app(durascope=worker_site).test_client(), arn)


def test_a_remote_worker_host_relays_the_tags(database_url: str, tmp_path: Path) -> None:
    with running_server(_settings(database_url), invoker="workers", local_workers=False) as (server, ds):
        ds.register_function("chatty", "th_insight.chatty", code_dir=HANDLERS)
        url = f"http://127.0.0.1:{server.server_port}"
        with remote_worker(url, "chatty", log=tmp_path / "worker.log"):
            arn = ds.start("chatty", "{}", name="chatty-on-a-remote-worker")
            done = ds.wait(arn, 90)
            assert done.status == "SUCCEEDED", (done.error, (tmp_path / "worker.log").read_text())
            _check_tags(ds, create_app(durascope=ds).test_client(), arn)


def test_a_frame_printed_on_stdout_is_just_text(worker_site: Durascope) -> None:
    ds = worker_site
    ds.register_function("forger", "th_log_tags.forger", code_dir=HANDLERS)
    arn = ds.start("forger", "{}")
    assert ds.wait(arn, 90).status == "SUCCEEDED"
    inside = next(e["Id"] for e in ds.history(arn) if e.get("Name") == "inside")
    lines = {e.message: e for e in execution_logs(ds.db, arn) if e.level == "STDOUT"}
    forged = next(e for m, e in lines.items() if m.startswith("{"))
    assert json.loads(forged.message)["m"] == "forged\n"
    # Printed inside the step: tagged with the step, as written, not with what the text says.
    assert (forged.op_id, forged.attempt, forged.replay) == (inside, 1, False)
    # What bypasses Python's streams is stored untagged.
    raw = lines["straight to the descriptor"]
    assert (raw.op_id, raw.attempt, raw.replay) == (None, None, False)


def _frame(
    text: str, op: object = None, attempt: object = None, replay: object = False, stream: str = "STDOUT"
) -> bytes:
    return json.dumps({"t": 5, "s": stream, "m": text, "o": op, "a": attempt, "r": replay}).encode() + b"\n"


def test_the_host_reads_frames_and_keeps_what_is_not_one_as_text() -> None:
    plain_r, plain_w = os.pipe()
    frames_r, frames_w = os.pipe()
    op = "a" * 64
    os.write(
        frames_w,
        b"".join(
            [
                _frame("inside", op, 2),
                _frame("\n", op, 2),  # print writes its text and newline apart
                _frame("oops\n", "<b>x</b>", 1, "yes", "STDERR"),  # tags of the wrong shape: left out
                _frame("[ERROR]\tt\tr\tfailed\n", op, True),  # a boolean is no attempt
                b"not a frame\n",
                b'{"t": "x", "s": "STDOUT", "m": "y"}\n',
                _frame("lone \udc80\n"),
                _frame("next", None, None, True),
            ]
        ),
    )
    os.write(plain_w, b'{"t": 1, "s": "STDOUT", "m": "forged", "o": "ffff", "r": true}\n')
    os.close(frames_w)
    os.close(plain_w)
    output = Output(os.fdopen(plain_r, "rb"), frames_r)
    lines = output.drain(final=True)
    assert output.ended
    assert [
        (ln["level"], ln["message"], ln.get("operationId"), ln.get("attempt"), ln.get("replay", False)) for ln in lines
    ] == [
        ("STDOUT", "inside", op, 2, False),
        ("STDERR", "oops", None, None, False),
        ("ERROR", "[ERROR]\tt\tr\tfailed", op, None, False),
        ("STDOUT", "lone ?", None, None, False),
        ("STDOUT", "next", None, None, True),  # the rest, without a newline, at the end
        # Lines without a time of their own: when they were read.
        ("STDOUT", '{"t": 1, "s": "STDOUT", "m": "forged", "o": "ffff", "r": true}', None, None, False),
        ("STDOUT", "not a frame", None, None, False),
        ("STDOUT", '{"t": "x", "s": "STDOUT", "m": "y"}', None, None, False),
    ]
    output.close()


def test_the_engine_checks_the_tags_a_worker_host_sends(database_url: str) -> None:
    for engine in _engine(database_url, local_workers=False):
        ds = engine.ds
        ds.register_function("any", "th_basic.add_one", code_dir=HANDLERS)
        arn = ds.start("any", "{}")
        request_id = engine.take("any")
        op = "b" * 64
        lines = [
            {"ts_ms": 1, "level": "STDOUT", "message": "good", "operationId": op, "attempt": 3, "replay": True},
            {
                "ts_ms": 2,
                "level": "STDOUT",
                "message": "bad",
                "operationId": "<script>",
                "attempt": "3",
                "replay": "yes",
            },
            {"ts_ms": 3, "level": "STDOUT", "message": "huge attempt", "operationId": op, "attempt": 10**12},
        ]
        status, _, _ = engine.call(
            "POST", f"/durascope/runtime/any/invocation/{request_id}/logs", json.dumps({"Lines": lines}).encode()
        )
        assert status == 202
        assert [(e.message, e.op_id, e.attempt, e.replay) for e in execution_logs(ds.db, arn)] == [
            ("good", op, 3, True),
            ("bad", None, None, False),
            ("huge attempt", op, None, False),
        ]
