"""Durascope's web layer: the Flask app factory.

    app = create_app(Settings.from_env(), durascope=Durascope(settings))

The app serves the Lambda-compatible REST API (``viewer.lambda_api``) so boto3 and the
AWS CLI work against Durascope unchanged, the worker runtime relay
(``viewer.runtime_api``), the HTML pages with their ``/api/v1`` JSON twins
(``viewer.pages``), and the status-change feed with the webhooks admin (``viewer.feed``).
Who may reach which of them is one rule, ``viewer.access``, installed in front of all.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from recorder.api import Durascope
from recorder.config import Settings

# Requests larger than this are refused before routing (413, AWS-shaped). Each route
# has its own, smaller limit (6 MB for most bodies, docs/protocol.md#rest-api).
HARD_BODY_LIMIT = 64 * 1024 * 1024


def create_app(
    settings: Settings | None = None, durascope: Durascope | None = None, bind_host: str | None = None, **config: Any
) -> Flask:
    """Build the app. Without ``durascope`` one is opened on ``settings`` *without* an
    engine (API only; another process runs invocations and timers); ``run_server``
    passes one that runs the engine. Whoever passes a Durascope closes it; one opened
    here is marked ``app.extensions["durascope_owned"] = True`` for the app's owner to close.
    ``bind_host`` is the name the server listens on, which the Host allowlist accepts."""
    from viewer import lambda_api, pages, runtime_api

    settings = settings or (durascope.settings if durascope is not None else Settings.from_env())
    owned = durascope is None
    ds = durascope if durascope is not None else Durascope(settings, run_engine=False)

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=HARD_BODY_LIMIT,
        # Seconds a RequestResponse Invoke waits for the execution to end (Lambda's
        # synchronous limit is 15 minutes; docs/protocol.md#choices).
        DURASCOPE_SYNC_INVOKE_TIMEOUT=900.0,
    )
    app.config.update(config)
    # CallbackIds are base64 and may hold "//"; never rewrite such paths with a redirect.
    app.url_map.merge_slashes = False
    app.extensions["durascope"] = ds
    app.extensions["durascope_owned"] = owned
    app.register_blueprint(lambda_api.bp)
    app.register_blueprint(runtime_api.bp)
    from viewer import feed  # status-change feed and webhooks admin

    app.register_blueprint(feed.bp)
    app.register_blueprint(pages.bp)
    from viewer import access, login

    access.install(app, access.AccessPolicy.build(settings.access_keys, settings.allowed_hosts, bind_host))
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = login.SessionCookies()
    if settings.access_keys:
        login.install(app, settings.access_keys, settings.session_hours)
    else:
        # Only the CSRF token lives in the session: a key of this process is enough (a
        # restarted server asks for a reload of a form left open).
        app.config["SECRET_KEY"] = secrets.token_bytes(32)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        # Routing failures outside the Lambda prefixes (unknown path, wrong method,
        # body over the hard limit) keep the AWS error shape too.
        return lambda_api.http_exception_response(exc)

    return app


def get_durascope(app: Flask) -> Durascope:
    return app.extensions["durascope"]
