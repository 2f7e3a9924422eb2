"""Viewer logins: throttled failures, cookies fit for https, a short life, and a logout the
server keeps (before: a stolen cookie kept working for 31 days after its user logged out)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from recorder.config import Settings
from viewer import create_app

KEYS = {"alice": "wonderland"}


def _app(database_url: str, **settings: object) -> Flask:
    return create_app(Settings.from_env(database_url=database_url, access_keys=KEYS, **settings))


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = _app(database_url)
    yield app
    app.extensions["durascope"].close()


def _login(c: FlaskClient, secret: str = "wonderland", **kw: object) -> tuple[int, dict[str, str]]:
    page = c.get("/login", **kw).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = c.post("/login", data={"csrf_token": token.group(1), "access_key_id": "alice", "secret": secret}, **kw)
    return r.status_code, dict(r.headers)


def _set_cookie(headers: dict[str, str]) -> str:
    return headers.get("Set-Cookie", "")


def test_failed_logins_are_throttled_per_address(app: Flask) -> None:
    c = app.test_client()
    for _ in range(5):
        assert _login(c, "guess")[0] == 401
    status, headers = _login(c)  # even the right secret waits now
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 300
    assert c.get("/").status_code == 302  # still not logged in
    other = app.test_client()
    assert _login(other, environ_base={"REMOTE_ADDR": "10.1.2.3"})[0] == 302  # another address is not held up


def test_the_cookie_is_secure_over_https_and_lives_hours_not_weeks(app: Flask) -> None:
    status, headers = _login(app.test_client())
    assert status == 302
    cookie = _set_cookie(headers)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert timedelta(hours=7) < expires - datetime.now(UTC) <= timedelta(hours=8)
    for kw in ({"base_url": "https://localhost"}, {"headers": {"X-Forwarded-Proto": "https"}}):
        status, headers = _login(app.test_client(), **kw)
        assert status == 302 and "Secure" in _set_cookie(headers), kw


def test_the_session_length_is_a_setting(database_url: str) -> None:
    app = _app(database_url, session_hours=1.0)
    try:
        _, headers = _login(app.test_client())
        expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", _set_cookie(headers)).group(1))
        assert expires - datetime.now(UTC) <= timedelta(hours=1)
    finally:
        app.extensions["durascope"].close()


def test_logout_ends_the_session_on_every_engine(app: Flask, database_url: str) -> None:
    browser = app.test_client()
    assert _login(browser)[0] == 302
    cookie = browser.get_cookie("session")
    assert cookie is not None and browser.get("/").status_code == 200
    # A second engine process on the same database accepts the same cookie...
    second = _app(database_url)
    try:
        thief = second.test_client()
        thief.set_cookie("session", cookie.value)
        assert thief.get("/").status_code == 200
        page = browser.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token and browser.post("/logout", data={"csrf_token": token.group(1)}).status_code == 302
        # ...until its user logs out on the first: then the copied cookie is worth nothing anywhere.
        assert thief.get("/").status_code == 302
        assert thief.get("/api/v1/executions").status_code == 401
        replayed = app.test_client()
        replayed.set_cookie("session", cookie.value)
        assert replayed.get("/").status_code == 302
    finally:
        second.extensions["durascope"].close()
