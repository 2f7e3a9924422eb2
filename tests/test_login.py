"""With DURASCOPE_ACCESS_KEYS the viewer requires a login and state-changing requests a CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from recorder.config import Settings
from viewer import create_app


@pytest.fixture
def client(database_url: str) -> Iterator[FlaskClient]:
    app = create_app(Settings.from_env(database_url=database_url, access_keys={"alice": "wonderland"}))
    with app.test_client() as c:
        yield c
    app.extensions["durascope"].close()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "the form must carry a CSRF token"
    return m.group(1)


def _login(c: FlaskClient, secret: str = "wonderland", next_path: str = "/") -> tuple[int, str | None]:
    page = c.get(f"/login?next={next_path}")
    r = c.post(
        f"/login?next={next_path}",
        data={"csrf_token": _csrf(page.get_data(as_text=True)), "access_key_id": "alice", "secret": secret},
    )
    return r.status_code, r.headers.get("Location")


def test_pages_redirect_to_the_login_and_the_api_json_answers_401(client: FlaskClient) -> None:
    r = client.get("/executions?status=FAILED")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=/executions")
    assert client.get("/api/v1/executions").status_code == 401
    # The Lambda API is not behind the login: it needs a SigV4 signature instead.
    r = client.get("/2025-12-01/functions/f/durable-executions")
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_wrong_secret_is_refused_and_the_right_one_logs_in(client: FlaskClient) -> None:
    status, _ = _login(client, secret="guess")
    assert status == 401
    assert client.get("/").status_code == 302
    status, location = _login(client, next_path="/executions")
    assert (status, location) == (302, "/executions")
    assert client.get("/").status_code != 302  # logged in: no longer sent to the login page


def test_login_never_redirects_off_site(client: FlaskClient) -> None:
    assert _login(client, next_path="//evil.example/steal")[1] == "/"
    client.post("/logout", data={"csrf_token": _csrf(client.get("/login").get_data(as_text=True))})


def test_state_changing_requests_need_the_csrf_token(client: FlaskClient) -> None:
    _login(client)
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    token = _csrf(client.get("/login").get_data(as_text=True))
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert client.get("/").status_code == 302  # logged out


def test_without_access_keys_there_is_no_login(database_url: str) -> None:
    app = create_app(Settings.from_env(database_url=database_url))
    try:
        with app.test_client() as c:
            assert c.get("/login").status_code == 404
    finally:
        app.extensions["durascope"].close()
