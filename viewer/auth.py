"""AWS Signature Version 4 on the API, when ``DURASCOPE_ACCESS_KEYS`` is set.

boto3, the AWS CLI and the SDK inside worker processes sign every request; this
module recomputes the signature of the request *as received* (raw percent-encoded
path, query, the headers the client listed as signed, the body) with botocore's own
SigV4 canonicalization, so what counts as "the same request" is exactly what boto3
means by it, and compares in constant time. Errors use the AWS shape with the codes
AWS uses for them (403 ``MissingAuthenticationTokenException``,
``UnrecognizedClientException``, ``InvalidSignatureException``; 400
``IncompleteSignatureException``). Off when no keys are configured (the local default).
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from recorder.errors import ServiceError

ALLOWED_SKEW_SECONDS = 300
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<sig>[0-9a-f]{64})\s*$")


class AuthError(ServiceError):
    status = 403


class MissingAuthenticationToken(AuthError):
    code = "MissingAuthenticationTokenException"


class UnrecognizedClient(AuthError):
    code = "UnrecognizedClientException"


class InvalidSignature(AuthError):
    code = "InvalidSignatureException"


class IncompleteSignature(AuthError):
    code = "IncompleteSignatureException"
    status = 400


API_PREFIXES = ("/2015-03-31/", "/2025-12-01/", "/durascope/runtime/")


def verify(method: str, host: str, raw_path: str, query: str, headers: dict[str, str], body: bytes,
           keys: dict[str, str], now: datetime | None = None) -> str:
    """Check one request's signature. Returns the access key id; raises AuthError."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization")
    if not auth:
        raise MissingAuthenticationToken("Missing Authentication Token")
    m = _AUTH_RE.match(auth)
    if not m:
        raise IncompleteSignature("Authorization header requires Credential, SignedHeaders and Signature "
                                  "in the AWS4-HMAC-SHA256 format")
    secret = keys.get(m["akid"])
    if secret is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    amz_date = lower.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature("X-Amz-Date header is missing or not in the form YYYYMMDDTHHMMSSZ") from None
    now = now or datetime.now(UTC)
    if abs((now - signed_at).total_seconds()) > ALLOWED_SKEW_SECONDS:
        raise InvalidSignature(f"Signature expired: {amz_date} is now earlier or later than "
                               f"{now.strftime('%Y%m%dT%H%M%SZ')} by more than {ALLOWED_SKEW_SECONDS // 60} minutes.")
    if m["date"] != amz_date[:8]:
        raise InvalidSignature("Credential date does not match X-Amz-Date")
    signed = m["signed"].split(";")
    if "host" not in signed:
        raise IncompleteSignature("SignedHeaders must include host")
    missing = [h for h in signed if h not in lower and h != "host"]
    if missing:
        raise IncompleteSignature(f"Signed headers are missing from the request: {', '.join(missing)}")
    request_headers: dict[str, str] = {h: (host if h == "host" else lower[h]) for h in signed}
    url = f"http://{host}{raw_path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=request_headers, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(m["akid"], secret), m["service"], m["region"])
    # botocore signs the headers it deems signable; sign exactly those the client listed.
    signer.headers_to_sign = lambda req: _headers(req, signed)  # type: ignore[method-assign]
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m["sig"]):
        raise InvalidSignature("The request signature we calculated does not match the signature you provided. "
                               "Check your AWS Secret Access Key and signing method.")
    return m["akid"]


def _headers(request: AWSRequest, names: list[str]) -> Any:
    from botocore.awsrequest import HTTPHeaders

    out = HTTPHeaders()
    for name in names:
        out[name] = request.headers[name]
    return out


def sign_headers(method: str, url: str, body: bytes | None, key_id: str, secret: str, region: str,
                 headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a SigV4-signed request (for worker hosts talking to the engine)."""
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(key_id, secret), "lambda", region).add_auth(request)
    return dict(request.headers.items())


def install(app: Any, keys: dict[str, str]) -> None:
    """Require signatures on the API routes of ``app`` (runs before any other hook)."""
    from flask import request

    from viewer.lambda_api import _raw_path, error_response

    def _check() -> Any:
        path = _raw_path()
        if not path.startswith(API_PREFIXES):
            return None
        try:
            verify(request.method, request.host, path, request.query_string.decode("latin-1"),
                   dict(request.headers), request.get_data(cache=True), keys)
        except ServiceError as exc:
            return error_response(exc)
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, _check)
