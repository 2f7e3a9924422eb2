"""Who may reach what: one rule for the whole app, applied before any view runs.

Every request gets a guard from what will actually serve it, never from how its path
looks: the Lambda API's own router (it routes on the raw, percent-encoded path, so it is
asked whether it claims the request) or else the Flask rule that matched the decoded path
(its blueprint and endpoint). ``/%64urascope/runtime/functions`` matches the runtime relay
and is guarded as the runtime relay.

* ``OPEN``: the login page and static assets (stylesheet, scripts, favicon).
* ``SIGNED``: the Lambda API and the worker runtime relay. With ``DURASCOPE_ACCESS_KEYS``
  set, a valid SigV4 signature over the request as received, body included
  (``recorder.sigv4``). A state-changing request is acted on once per signature: a replay
  within the clock skew gets a retryable 429. SigV4 has no nonce, so two byte-identical
  POSTs that boto3 signs within one second look alike too; the second is retried by boto3
  after its back-off, signed anew. Reads are not checked (a polling loop repeats itself).
* ``VIEWER``: everything else, including any path no route matched (default deny): pages,
  ``/api/v1``, the feed, the webhooks admin, errors, search, compare and the waiting board
  (its bulk actions are CSRF-checked form posts), the replay check (``viewer.replay_pages``)
  and function statistics (``viewer.functions_pages``; its plotly.js is a static asset, OPEN).
  With keys set, a logged-in session, or a SigV4 signature for scripts.

Whatever the keys, every request also passes these, in this order, before any body is read:

1. **Host allowlist** against DNS rebinding, which would let any web page read the API as
   if it were on loopback. Allowed: IP literals (a rebinding attack needs a name), loopback
   names, this machine's own names, the name ``serve`` binds to, ``DURASCOPE_ALLOWED_HOSTS``.
   Enforced while no keys are set (with keys, signatures cover the Host header and session
   cookies are bound to their site) and whenever ``DURASCOPE_ALLOWED_HOSTS`` is set.
2. **No cross-site writes**: a state-changing request whose ``Origin`` is not this server's
   own, or whose ``Sec-Fetch-Site`` is ``cross-site``, is refused. boto3, the AWS CLI and the
   runtimes send neither header, so they are unaffected.
3. **Body size** by ``Content-Length``, against the route's limit, before reading.
4. **CSRF token** (form field ``csrf_token`` or header ``X-CSRF-Token``) on state-changing
   VIEWER requests that are not SigV4-signed: on every HTML form's target, keys or not, and
   with keys on every session-authenticated request. Without keys, scripts call ``/api/v1``
   with no token; browsers send ``Origin`` on every POST, PUT and DELETE, so check 2 is
   what keeps other sites out of it.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from markupsafe import escape

from recorder import sigv4
from recorder.arns import ExecutionArn
from recorder.errors import RequestTooLargeException, ServiceError, TooManyRequestsException
from recorder.store import sessions
from viewer import get_durascope, lambda_api
from viewer.rawpath import raw_path


class Guard(enum.Enum):
    OPEN = "open"
    SIGNED = "signed"
    VIEWER = "viewer"


# Endpoints anyone may fetch: what the login page itself needs.
OPEN_ENDPOINTS = frozenset({"login.login", "static", "pages.favicon", "pages.functions_pages.plotly_js"})
SIGNED_BLUEPRINTS = frozenset({"runtime_api"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
LOOPBACK_NAMES = ("localhost",)
SESSION_TOKEN = "sid"  # the session cookie's key for the server-side login session
MIB = 1024 * 1024
VIEWER_BODY_LIMIT = 2 * MIB  # a callback result (1 MiB) sent from the execution page's form
RUNTIME_BODY_LIMIT = 7 * MIB  # a handler's result (6 MB) relayed by a worker host


@dataclass(frozen=True)
class AccessPolicy:
    """What the rule needs to know about this deployment."""

    keys: sigv4.KeyRing
    allowed_hosts: tuple[str, ...]
    enforce_hosts: bool

    @classmethod
    def build(cls, keys: dict[str, str], configured_hosts: Iterable[str], bind_host: str | None) -> AccessPolicy:
        configured = tuple(h.strip().lower() for h in configured_hosts if h.strip())
        names = {*LOOPBACK_NAMES, *configured}
        for name in (socket.gethostname(), socket.getfqdn(), bind_host or ""):
            if name:
                names.add(name.lower())
        return cls(sigv4.KeyRing(keys), tuple(sorted(names)), enforce_hosts=not keys or bool(configured))

    def host_allowed(self, host_header: str) -> bool:
        host = _hostname(host_header)
        if host is None:
            return False
        if "*" in self.allowed_hosts or _is_ip(host) or host.endswith(".localhost"):
            return True
        return any(host == name or (name.startswith(".") and host.endswith(name)) for name in self.allowed_hosts)


def _hostname(host_header: str) -> str | None:
    text = host_header.strip().lower()
    if not text:
        return None
    if text.startswith("["):  # [v6]:port
        end = text.find("]")
        return text[1:end] if end > 0 else None
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


@lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
        return True
    except ValueError:
        return False


def guard() -> Guard:
    """The guard of the current request, from the route that will serve it."""
    if lambda_api.claims(raw_path(request.environ)):
        return Guard.SIGNED
    if request.url_rule is None:
        return Guard.VIEWER
    if request.endpoint in OPEN_ENDPOINTS:
        return Guard.OPEN
    if request.blueprint in SIGNED_BLUEPRINTS:
        return Guard.SIGNED
    return Guard.VIEWER


def _body_limit(kind: Guard) -> int:
    if kind is Guard.SIGNED:
        path = raw_path(request.environ)
        if lambda_api.claims(path):
            return lambda_api.body_limit(request.method, path, request.headers.get("X-Amz-Invocation-Type"))
        return RUNTIME_BODY_LIMIT
    return VIEWER_BODY_LIMIT


# --- CSRF ---------------------------------------------------------------------------------------


def csrf_token() -> str:
    """This browser session's token (made on first use); templates call ``{{ csrf_token() }}``."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or (
        request.form.get("csrf_token") if request.mimetype in FORM_TYPES else None
    )
    expected = session.get("csrf", "")
    return bool(sent and expected) and hmac.compare_digest(sent, expected)


# --- refusals -----------------------------------------------------------------------------------


def _refuse(kind: Guard, status: int, message: str, exc: ServiceError | None = None) -> Response:
    """The AWS error shape on the signed API, JSON under /api/, a small page for a browser."""
    if kind is Guard.SIGNED:
        resp = lambda_api.error_response(exc or _ForbiddenRequest(message))
    elif request.path.startswith("/api/"):
        from viewer.api_v1 import error_json  # the one /api/v1 error shape

        resp, _ = error_json(status, message, exc.code if exc else None)
        resp.status_code = status
    else:
        resp = Response(
            f"<!doctype html><title>{status}</title><p>{escape(message)}</p>", status=status, mimetype="text/html"
        )
    if request.content_length:
        resp.headers["Connection"] = "close"  # the body was never read
    return resp


class _ForbiddenRequest(ServiceError):
    code = "AccessDeniedException"
    status = 403


class _MisdirectedRequest(ServiceError):
    code = "AccessDeniedException"
    status = 421


# --- the rule -----------------------------------------------------------------------------------


def check(policy: AccessPolicy, replays: sigv4.ReplayCache) -> Response | None:
    """Run before every request: None lets it through, a response refuses it."""
    kind = guard()
    host = request.headers.get("Host", "")
    if policy.enforce_hosts and not policy.host_allowed(host):
        return _refuse(
            kind,
            421,
            f"Host {host[:100]!r} is not served here: add it to DURASCOPE_ALLOWED_HOSTS.",
            _MisdirectedRequest(f"Host {host[:100]!r} is not served here"),
        )
    if request.method in UNSAFE_METHODS and _cross_site():
        return _refuse(kind, 403, "Cross-site requests are refused: send this from Durascope's own pages.")
    limit = _body_limit(kind)
    length = request.content_length
    if length is not None and length > limit:
        return _refuse(
            kind,
            413,
            f"Request body must be at most {limit} bytes, got {length}",
            RequestTooLargeException(f"Request body must be at most {limit} bytes, got {length}"),
        )
    request.max_content_length = limit
    if kind is Guard.OPEN:
        return None
    if policy.keys:
        return _authenticate(kind, policy, replays)
    if kind is Guard.VIEWER and _changes_state() and not request.path.startswith("/api/") and not _csrf_ok():
        return _refuse(kind, 403, "Missing or stale CSRF token: reload the page and submit the form again.")
    return None


def _changes_state() -> bool:
    # A request no route serves (404, 405) changes nothing and keeps its routing error.
    return request.method in UNSAFE_METHODS and request.url_rule is not None


def _cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return origin == "null" or not parts.netloc or parts.netloc.lower() != request.headers.get("Host", "").lower()


def current_user() -> str | None:
    """The key id of this browser's live login session (checked against the server's own
    record, so a logged-out or expired session is refused even with a valid cookie)."""
    if "durascope_user" not in g:
        token = session.get(SESSION_TOKEN)
        g.durascope_user = (
            sessions.session_key_id(get_durascope(current_app).db, token) if isinstance(token, str) else None
        )
    return g.durascope_user


def _authenticate(kind: Guard, policy: AccessPolicy, replays: sigv4.ReplayCache) -> Response | None:
    if kind is Guard.VIEWER and not sigv4.claims_signature(request.headers):
        if not current_user():
            if request.method == "GET" and not request.path.startswith("/api/"):
                return redirect(url_for("login.login", next=request.full_path.rstrip("?")))
            return _refuse(kind, 401, "Log in first: the viewer requires it when DURASCOPE_ACCESS_KEYS is set.")
        if _changes_state() and not _csrf_ok():
            return _refuse(kind, 403, "Missing or stale CSRF token: reload the page and submit the form again.")
        return None
    try:
        auth = sigv4.parse_authorization(request.headers, policy.keys)
        body = request.get_data(cache=True)
        sigv4.verify_signature(
            auth,
            request.method,
            request.host,
            raw_path(request.environ),
            request.query_string.decode("latin-1"),
            request.headers,
            body,
        )
    except sigv4.AuthError as exc:
        return _refuse(kind, exc.status, exc.message, exc)
    function = sigv4.runtime_function(auth.key_id)
    if function is not None and not _runtime_may(function):
        denied = _ForbiddenRequest(
            f"{auth.key_id} is a runtime's key: it may only checkpoint and read executions of function {function}"
        )
        return _refuse(kind, denied.status, denied.message, denied)
    if request.method in UNSAFE_METHODS:
        # A replayed read changes nothing (and identical reads in one second, a polling
        # loop, are common); a state-changing request is acted on once per signature.
        if not replays.reserve(auth.signature):
            exc = TooManyRequestsException(
                "This signed request was already received: a state-changing request is answered once per "
                "signature. Sign it again (X-Amz-Date moves every second; boto3 retries this error by itself)."
            )
            return _refuse(kind, exc.status, exc.message, exc)
        g.durascope_signature = auth.signature
    return None


# What the SDK inside a runtime calls: CheckpointDurableExecution, GetDurableExecutionState,
# and reads of its own execution.
RUNTIME_CALLS = frozenset({("POST", "checkpoint"), ("GET", "state"), ("GET", None), ("GET", "history")})


def _runtime_may(function: str) -> bool:
    route = lambda_api.execution_route(raw_path(request.environ))
    if route is None or (request.method, route[1]) not in RUNTIME_CALLS:
        return False
    try:
        return ExecutionArn.parse(route[0]).function == function
    except ServiceError:
        return False


def _release_unacted(replays: sigv4.ReplayCache, response: Response) -> Response:
    # A request refused or failed by the server was not acted on: a retry signed in the same
    # second (the same signature) must get through.
    signature = g.pop("durascope_signature", None)
    if signature is not None and (response.status_code >= 500 or response.status_code == 429):
        replays.release(signature)
    return response


def install(app: Flask, policy: AccessPolicy) -> None:
    """Put the rule in front of every other hook of ``app``."""
    replays = sigv4.ReplayCache()
    app.extensions["durascope_replays"] = replays
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: check(policy, replays))
    app.after_request(lambda response: _release_unacted(replays, response))

    @app.context_processor
    def _helpers() -> dict[str, Any]:
        return {
            "csrf_token": csrf_token,
            "login_enabled": bool(policy.keys),
            "current_user": current_user() if policy.keys else None,
        }
