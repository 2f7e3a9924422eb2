"""The API server keeps HTTP/1.1 connections open (viewer.keepalive): boto3 reuses one
connection for many calls, and every way a request can end leaves the connection either
ready for the next request or closed, never out of step."""

from __future__ import annotations

import http.client
import logging
import time
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from recorder.api import Durascope, wait_until
from recorder.httpclient import EngineConnections
from tests.test_lambda_api import register_all, serving
from viewer.keepalive import MAX_DRAIN, KeepAliveHandler, KeepAliveServer


class Counting(KeepAliveServer):
    def __init__(self, app: Any) -> None:
        self.accepted = 0
        super().__init__("127.0.0.1", 0, app)

    def track(self, conn: socket.socket, is_open: bool) -> None:
        if is_open:
            self.accepted += 1
        super().track(conn, is_open)


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
    # Ignores any request body, as an error route or a GET-only route does.
    data = f"{environ['REQUEST_METHOD']} {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture
def server() -> Iterator[Counting]:
    srv = Counting(app)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


def connect(srv: Counting) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=10)


def get(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp


def test_one_connection_serves_many_requests(server: Counting) -> None:
    conn = connect(server)
    for i in range(5):
        status, body, resp = get(conn, "GET", f"/r{i}")
        assert (status, body) == (200, f"GET /r{i}".encode())
        assert resp.getheader("Connection") == "keep-alive"
    assert server.accepted == 1


def test_an_unread_body_is_drained_so_the_next_request_parses(server: Counting) -> None:
    conn = connect(server)
    status, body, _ = get(conn, "POST", "/ignores", body=b"x" * 50_000)
    assert (status, body) == (200, b"POST /ignores")
    status, body, _ = get(conn, "POST", "/echo", body=b"second")
    assert (status, body) == (200, b"second")
    assert server.accepted == 1


def test_a_refused_large_body_is_read_off_and_the_connection_kept(server: Counting) -> None:
    conn = connect(server)
    status, body, resp = get(conn, "POST", "/ignores", body=b"x" * (7 * 1024 * 1024))  # over the API's limit
    assert (status, body) == (200, b"POST /ignores") and resp.getheader("Connection") == "keep-alive"
    assert get(conn, "GET", "/after")[1] == b"GET /after"
    assert server.accepted == 1


def test_a_body_too_large_to_drain_closes_the_connection(server: Counting) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        # Only the start of the body is sent: the server answers and closes without
        # waiting for the rest.
        sock.sendall(b"POST /ignores HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nxxxx" % (MAX_DRAIN + 1))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and body == b"POST /ignores"


def test_a_response_without_length_is_chunked_and_the_connection_kept(server: Counting) -> None:
    conn = connect(server)
    status, body, resp = get(conn, "GET", "/stream")
    assert (status, body) == (200, b"one,two,three")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert get(conn, "GET", "/again")[1] == b"GET /again"
    assert server.accepted == 1


@pytest.mark.parametrize("how", ["client asks", "HTTP/1.0"])
def test_the_connection_closes_when_the_client_cannot_keep_it(server: Counting, how: str) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        if how == "client asks":
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        else:
            sock.sendall(b"GET /stream HTTP/1.0\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # ends only because the server closes
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert body == (b"GET /x" if how == "client asks" else b"one,two,three")


def test_an_application_error_is_a_500_and_closes_the_connection(server: Counting) -> None:
    conn = connect(server)
    status, _, resp = get(conn, "GET", "/boom")
    assert status == 500 and resp.getheader("Connection") == "close"
    assert get(conn, "GET", "/fine")[:2] == (200, b"GET /fine")


def test_closing_the_server_closes_idle_kept_connections() -> None:
    srv = Counting(app)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", srv.server_port), timeout=10) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"GET /x"):
            data += sock.recv(65536)
        srv.shutdown()
        srv.server_close()
        thread.join(10)
        assert sock.recv(65536) == b""  # the server's side is gone, not left answering


def test_boto3_reuses_one_connection_for_api_calls(database_url: str) -> None:
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register_all(ds)
        with serving(ds) as api:
            assert api.server is not None
            opened: list[int] = []
            original = api.server.track

            def track(conn: socket.socket, is_open: bool) -> None:
                if is_open:
                    opened.append(1)
                original(conn, is_open)

            api.server.track = track  # type: ignore[method-assign]
            arns = []
            for i in range(5):
                r = api.client.invoke(FunctionName="add-one", InvocationType="Event", Payload=b'{"a": 1}')
                r["Payload"].read()  # a streaming body returns its connection to the pool once read
                arns.append(r["DurableExecutionArn"])
            for arn in arns:
                assert api.status(arn) == "RUNNING"
            assert len(opened) == 1
    finally:
        ds.close()


def test_a_worker_hosts_connection_is_reused_and_survives_a_server_side_close(server: Counting) -> None:
    conns = EngineConnections(f"http://127.0.0.1:{server.server_port}/base")
    for i in range(3):
        assert conns.request("GET", f"/r{i}", None, {}, 10)[::2] == (200, f"GET /base/r{i}".encode())
    assert server.accepted == 1
    server.drop_connections()  # as the server's idle timeout or a restart would
    wait_until(lambda: server.open_connections == 0, 10, "the handler thread did not end")
    assert conns.request("POST", "/after", b"body", {}, 10)[::2] == (200, b"POST /base/after")
    assert server.accepted == 2


def test_a_worker_hosts_request_to_a_dead_engine_fails_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ConnectionRefusedError):
        EngineConnections(f"http://127.0.0.1:{port}").request("GET", "/x", None, {}, 5)
    with pytest.raises(ValueError, match="http:// or https://"):
        EngineConnections("ftp://engine")


def test_an_idle_connection_is_closed_quietly(caplog: pytest.LogCaptureFixture) -> None:
    class QuickIdle(KeepAliveHandler):
        timeout = 0.3

    class QuickServer(KeepAliveServer):
        handler_class = QuickIdle

    srv = QuickServer("127.0.0.1", 0, app)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO), socket.create_connection(("127.0.0.1", srv.server_port),
                                                                      timeout=10) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            started = time.monotonic()
            while chunk := sock.recv(65536):  # the response, then EOF when the idle timeout closes it
                data += chunk
            assert data.endswith(b"GET /x") and time.monotonic() - started < 9
        wait_until(lambda: srv.open_connections == 0, 10, "the handler thread did not end")
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def test_a_closing_connection_reads_off_the_unread_body_first(server: Counting) -> None:
    """A client that asked to close and is still sending a large body when the answer
    comes must not find the connection gone under it (a broken pipe while sending)."""
    for _ in range(3):
        conn = connect(server)
        status, body, resp = get(conn, "POST", "/ignores", body=b"x" * (7 * 1024 * 1024),
                                 headers={"Connection": "close"})
        assert (status, body) == (200, b"POST /ignores") and resp.getheader("Connection") == "close"
        conn.close()
