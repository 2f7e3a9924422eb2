"""The viewer's login page, served when ``DURASCOPE_ACCESS_KEYS`` is set.

The API authenticates each request by its SigV4 signature; people in a browser log in once
with an access key id and its secret and get a signed session cookie (HttpOnly,
SameSite=Lax). What needs a login, and the CSRF token every form carries, are decided by
``viewer.access``. The session key is derived from the configured secrets, so every engine
process of a deployment accepts the same cookie and changing the keys logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for

from viewer.access import csrf_token

bp = Blueprint("login", __name__)


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
    """Serve the login page; the session key is derived from the configured secrets."""
    app.config["DURASCOPE_ACCESS_KEYS"] = keys
    app.config["SECRET_KEY"] = hashlib.sha256(
        b"durascope-session\0" + b"\0".join(f"{k}:{v}".encode() for k, v in sorted(keys.items()))).digest()
    app.register_blueprint(bp)


def _refusal(status: int, message: str) -> Any:
    from flask import Response
    from markupsafe import escape

    return Response(f"<!doctype html><title>{status}</title><p>{escape(message)}</p>", status=status,
                    mimetype="text/html")
