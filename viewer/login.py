"""The viewer's login page, served when ``DURASCOPE_ACCESS_KEYS`` is set.

The API authenticates each request by its SigV4 signature; people in a browser log in with
an access key id and its secret. A login opens a session the server keeps
(``recorder.store.sessions``): the signed cookie (HttpOnly, SameSite=Lax, ``Secure`` when
the page came over https, ``DURASCOPE_SESSION_HOURS`` long) carries its token, and logging
out revokes it for every engine process. What needs a login, and the CSRF token every form
carries, are decided by ``viewer.access``.

Failed logins are throttled per client address (``MAX_FAILURES`` in ``FAILURE_WINDOW``
seconds, then 429 until the oldest failure leaves the window), in each process's memory: a
deployment of N processes allows N times that, still far too few to guess a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from markupsafe import escape

from recorder.store import sessions
from viewer import get_durascope, lambda_api
from viewer.access import SESSION_TOKEN, csrf_token
from viewer.rawpath import raw_path

bp = Blueprint("login", __name__)
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0


class LoginThrottle:
    """Failed logins per client address within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait_seconds(self, client: str) -> float:
        """0 when the client may try; else how long until it may."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.max_failures:
                return 0.0
            return times[0] + self.window - now

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # forget addresses that stopped trying
                self._failures = {c: t for c, t in self._failures.items() if self._recent(c, now)}


class SessionCookies(SecureCookieSessionInterface):
    """The viewer's cookie session. ``Secure`` on a cookie sent over https, directly or
    through a proxy that says so. Lambda API requests (signed, never a browser's) get no
    session: opening one (its signing serializer) was ~0.08 ms of every checkpoint."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if lambda_api.claims(raw_path(request.environ)):
            return self.null_session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect a login to another host.
    if not target or urlparse(target).netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    keys: dict[str, str] = current_app.config["DURASCOPE_ACCESS_KEYS"]
    throttle: LoginThrottle = current_app.extensions["durascope_login_throttle"]
    error = None
    if request.method == "POST":
        if not session.get("csrf") or request.form.get("csrf_token") != session.get("csrf"):
            return _refusal(400, "The login form expired; reload the page and try again.")
        client = request.remote_addr or "unknown"
        wait = throttle.wait_seconds(client)
        if wait > 0:
            resp = _refusal(429, f"Too many failed logins from this address: try again in {int(wait) + 1} s.")
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        key_id = request.form.get("access_key_id", "")
        secret = request.form.get("secret", "")
        expected = keys.get(key_id)
        if expected is not None and hmac.compare_digest(expected.encode(), secret.encode()):
            lifetime = current_app.permanent_session_lifetime.total_seconds()
            token = sessions.open_session(get_durascope(current_app).db, key_id, lifetime)
            session.clear()
            session[SESSION_TOKEN] = token
            session.permanent = True
            csrf_token()
            return redirect(_safe_next(request.args.get("next")))
        throttle.failed(client)
        error = "Unknown access key id or wrong secret."
    return render_template("login.html", error=error, next=_safe_next(request.args.get("next"))), 401 if error else 200


@bp.post("/logout")
def logout() -> Any:
    token = session.get(SESSION_TOKEN)
    if token:
        sessions.revoke_session(get_durascope(current_app).db, token)
    session.clear()
    return redirect(url_for("login.login"))


def install(app: Flask, keys: dict[str, str], session_hours: float) -> None:
    """Serve the login page; the cookie key is derived from the configured secrets, so every
    engine process of a deployment accepts the same cookie and new keys log everyone out."""
    app.config["DURASCOPE_ACCESS_KEYS"] = keys
    app.config["SECRET_KEY"] = hashlib.sha256(
        b"durascope-session\0" + b"\0".join(f"{k}:{v}".encode() for k, v in sorted(keys.items()))
    ).digest()
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=session_hours)
    app.extensions["durascope_login_throttle"] = LoginThrottle()
    app.register_blueprint(bp)


def _refusal(status: int, message: str) -> Response:
    return Response(
        f"<!doctype html><title>{status}</title><p>{escape(message)}</p>", status=status, mimetype="text/html"
    )
