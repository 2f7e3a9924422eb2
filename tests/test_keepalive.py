"""The API server keeps HTTP/1.1 connections open (viewer.wsgiserver): boto3 reuses one
connection for many calls, and every way a request can end leaves the connection either
ready for the next request or closed, never out of step."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from recorder.api import Durascope, wait_until
from recorder.httpclient import EngineConnections
from tests.test_lambda_api import register_all, serving
from viewer import wsgiserver
from viewer.wsgiserver import MAX_DRAIN, ServerLimits, WSGIServer

parked = threading.Event()


def app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("handler bug")
    if path == "/stream":  # no Content-Length: sent chunked
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"two,", b"three"])
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/park":  # a long poll: holds its thread until released
        parked.wait(30)
    # Ignores any request body, as an error route or a GET-only route does.
    data = f"{environ['REQUEST_METHOD']} {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def started(limits: ServerLimits | None = None) -> tuple[WSGIServer, threading.Thread]:
    srv = WSGIServer(app, limits=limits or ServerLimits())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv, thread


def stop(srv: WSGIServer, thread: threading.Thread) -> None:
    srv.shutdown()
    srv.server_close()
    thread.join(10)


@pytest.fixture
def server() -> Iterator[WSGIServer]:
    srv, thread = started()
    yield srv
    stop(srv, thread)


def connect(srv: WSGIServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=10)


def get(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):  # ends only because the server closes
        data += chunk
    return data


@pytest.mark.parametrize("linger", [0.0, wsgiserver.LINGER_SECONDS], ids=["via-selector", "lingering"])
def test_one_connection_serves_many_requests(server: WSGIServer, monkeypatch, linger: float) -> None:
    """Each next request is served whether it comes while the thread that answered the last
    one still waits for it, or after the connection went back to the selector."""
    monkeypatch.setattr(wsgiserver, "LINGER_SECONDS", linger)
    conn = connect(server)
    for i in range(5):
        status, body, resp = get(conn, "GET", f"/r{i}")
        assert (status, body) == (200, f"GET /r{i}".encode())
        assert not resp.will_close
    assert server.accepted == 1


@pytest.mark.parametrize("linger", [0.0, wsgiserver.LINGER_SECONDS], ids=["via-selector", "lingering"])
def test_pipelined_requests_are_all_answered_in_order(server: WSGIServer, monkeypatch, linger: float) -> None:
    """Requests sent together arrive in one read: those already buffered are served without
    waiting for more bytes from the socket."""
    monkeypatch.setattr(wsgiserver, "LINGER_SECONDS", linger)
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        sock.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 3 or not answers.endswith(b"GET /p2"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {answers!r}"
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK") == 3
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1][:7] for part in answers.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"GET /p0", b"GET /p1", b"GET /p2"]


def test_a_body_read_by_the_application_keeps_the_connection(server: WSGIServer) -> None:
    conn = connect(server)
    assert get(conn, "POST", "/echo", body=b"x" * 50_000)[:2] == (200, b"x" * 50_000)
    assert get(conn, "POST", "/echo", body=b"second")[:2] == (200, b"second")
    assert server.accepted == 1


def test_an_answer_before_the_body_is_read_comes_first_then_the_connection_closes(server: WSGIServer) -> None:
    """A client still sending a large body when the answer comes reads the answer, not a
    reset: what it sends is read off after the answer; then the connection closes, since
    reading off a body is not worth keeping it for."""
    for _ in range(3):
        conn = connect(server)
        status, body, resp = get(conn, "POST", "/ignores", body=b"x" * (7 * 1024 * 1024))
        assert (status, body) == (200, b"POST /ignores") and resp.will_close
        assert get(conn, "GET", "/after")[:2] == (200, b"GET /after")  # http.client reconnects
        conn.close()


def test_a_client_that_never_sends_its_announced_body_gets_the_answer(server: WSGIServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        sock.sendall(b"POST /ignores HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        head = b""
        while b"POST /ignores" not in head:  # before the server gives up reading the body
            head += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head


def test_a_body_too_large_to_read_off_closes_the_connection(server: WSGIServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        # Only the start of the body is sent: the server answers and closes without
        # waiting for the rest.
        sock.sendall(b"POST /ignores HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nxxxx" % (MAX_DRAIN + 1))
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and body == b"POST /ignores"


def test_a_response_without_length_is_chunked_and_the_connection_kept(server: WSGIServer) -> None:
    conn = connect(server)
    status, body, resp = get(conn, "GET", "/stream")
    assert (status, body) == (200, b"one,two,three")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert get(conn, "GET", "/again")[1] == b"GET /again"
    assert server.accepted == 1


@pytest.mark.parametrize("how", ["client asks", "HTTP/1.0"])
def test_the_connection_closes_when_the_client_cannot_keep_it(server: WSGIServer, how: str) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        if how == "client asks":
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        else:
            sock.sendall(b"GET /stream HTTP/1.0\r\nHost: t\r\n\r\n")
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == (b"GET /x" if how == "client asks" else b"one,two,three")
    if how == "client asks":
        assert b"Connection: close" in head


def test_an_application_error_is_a_500_and_closes_the_connection(
    server: WSGIServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connect(server)
    status, _, resp = get(conn, "GET", "/boom")
    assert status == 500 and resp.will_close
    assert get(conn, "GET", "/fine")[:2] == (200, b"GET /fine")
    assert "handler bug" in caplog.text  # logged with its traceback, not lost


def test_closing_the_server_closes_idle_kept_connections() -> None:
    srv, thread = started()
    with socket.create_connection(("127.0.0.1", srv.server_port), timeout=10) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"GET /x"):
            data += sock.recv(65536)
        stop(srv, thread)
        assert sock.recv(65536) == b""  # the server's side is gone, not left answering


def test_closing_the_server_does_not_wait_for_a_parked_request() -> None:
    """A worker host's long poll (or a stream) still running when the server stops has its
    connection cut; the stop does not wait for it to return."""
    parked.clear()
    srv, thread = started()
    try:
        with socket.create_connection(("127.0.0.1", srv.server_port), timeout=10) as sock:
            sock.sendall(b"GET /park HTTP/1.1\r\nHost: t\r\n\r\n")
            wait_until(lambda: srv.open_connections == 1, 10, "the request did not arrive")
            stop(srv, thread)
            assert not thread.is_alive()
            assert read_all(sock) == b""  # cut, not answered
    finally:
        parked.set()


def test_boto3_reuses_one_connection_for_api_calls(database_url: str) -> None:
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register_all(ds)
        with serving(ds) as api:
            assert api.server is not None
            arns = []
            for _ in range(5):
                r = api.client.invoke(FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 1}')
                r["Payload"].read()  # a streaming body returns its connection to the pool once read
                arns.append(r["DurableExecutionArn"])
            for arn in arns:
                assert api.status(arn) == "RUNNING"
            assert api.server.accepted == 1
    finally:
        ds.close()


def test_a_worker_hosts_connection_is_reused_and_survives_a_server_side_close() -> None:
    srv, thread = started(ServerLimits(idle_timeout=0.5))
    try:
        conns = EngineConnections(f"http://127.0.0.1:{srv.server_port}/base")
        for i in range(3):
            assert conns.request("GET", f"/r{i}", None, {}, 10)[::2] == (200, f"GET /base/r{i}".encode())
        assert srv.accepted == 1
        # The server's idle timeout closes the kept connection, as a restart would.
        wait_until(lambda: srv.open_connections == 0, 10, "the idle connection was not closed")
        assert conns.request("POST", "/after", b"body", {}, 10)[::2] == (200, b"POST /base/after")
        assert srv.accepted == 2
    finally:
        stop(srv, thread)


def test_a_worker_hosts_request_to_a_dead_engine_fails_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ConnectionRefusedError):
        EngineConnections(f"http://127.0.0.1:{port}").request("GET", "/x", None, {}, 5)
    with pytest.raises(ValueError, match="http:// or https://"):
        EngineConnections("ftp://engine")


def test_an_idle_connection_is_closed_quietly(caplog: pytest.LogCaptureFixture) -> None:
    srv, thread = started(ServerLimits(idle_timeout=0.3))
    try:
        with (
            caplog.at_level(logging.INFO),
            socket.create_connection(("127.0.0.1", srv.server_port), timeout=10) as sock,
        ):
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            started_at = time.monotonic()
            data = read_all(sock)  # the response, then EOF when the idle timeout closes it
            assert data.endswith(b"GET /x") and time.monotonic() - started_at < 9
        wait_until(lambda: srv.open_connections == 0, 10, "the connection was not released")
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        stop(srv, thread)
