"""Viewer login and CSRF protection, active when ``DURASCOPE_ACCESS_KEYS`` is set.

The API authenticates each request by its SigV4 signature (``viewer.auth``); people in a
browser log in once with an access key id and its secret and get a signed session cookie
(HttpOnly, SameSite=Lax). Every state-changing request to a page or to ``/api/v1`` must then
carry the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``);
templates put it in their forms with ``{{ csrf_token() }}``. The session key is derived from
the configured secrets, so every engine process of a deployment accepts the same cookie and
changing the keys logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for

from viewer.auth import API_PREFIXES

bp = Blueprint("login", __name__)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_OPEN = ("/login", "/static/", "/favicon.ico")


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect a login to another host.
    if not target or urlparse(target).netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    keys: dict[str, str] = bp_keys()
    error = None
    if request.method == "POST":
        if not session.get("csrf") or request.form.get("csrf_token") != session.get("csrf"):
            return _refusal(400, "The login form expired; reload the page and try again.")
        key_id = request.form.get("access_key_id", "")
        secret = request.form.get("secret", "")
        expected = keys.get(key_id)
        if expected is not None and hmac.compare_digest(expected.encode(), secret.encode()):
            session.clear()
            session["user"] = key_id
            session.permanent = True
            csrf_token()
            return redirect(_safe_next(request.args.get("next")))
        error = "Unknown access key id or wrong secret."
    return render_template("login.html", error=error, next=_safe_next(request.args.get("next"))), 401 if error else 200


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("login.login"))


def bp_keys() -> dict[str, str]:
    from flask import current_app

    return current_app.config["DURASCOPE_ACCESS_KEYS"]


def install(app: Flask, keys: dict[str, str]) -> None:
    app.config["DURASCOPE_ACCESS_KEYS"] = keys
    app.config["SECRET_KEY"] = hashlib.sha256(
        b"durascope-session\0" + b"\0".join(f"{k}:{v}".encode() for k, v in sorted(keys.items()))).digest()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.register_blueprint(bp)

    @app.before_request
    def _require_login() -> Any:
        path = request.path
        if path.startswith(API_PREFIXES) or path.startswith(_OPEN):
            return None  # the API is signed per request; the login page is open
        if not session.get("user"):
            if path.startswith("/api/"):
                return _refusal(401, "Log in first: the viewer requires it when DURASCOPE_ACCESS_KEYS is set.")
            return redirect(url_for("login.login", next=request.full_path.rstrip("?")))
        if request.method in _UNSAFE:
            sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                return _refusal(403, "Missing or stale CSRF token: reload the page and submit the form again.")
        return None


def _refusal(status: int, message: str) -> Any:
    from flask import Response, jsonify
    from markupsafe import escape

    if request.path.startswith("/api/"):
        resp = jsonify({"error": message})
        resp.status_code = status
        return resp
    return Response(f"<!doctype html><title>{status}</title><p>{escape(message)}</p>", status=status,
                    mimetype="text/html")


def register_template_helpers(app: Flask) -> None:
    """``csrf_token()`` in every template (an empty string when login is off)."""

    @app.context_processor
    def _helpers() -> dict[str, Any]:
        enabled = bool(app.config.get("DURASCOPE_ACCESS_KEYS"))
        return {"csrf_token": csrf_token if enabled else (lambda: ""), "login_enabled": enabled,
                "current_user": session.get("user") if enabled else None}
