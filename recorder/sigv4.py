"""AWS Signature Version 4: verifying what boto3 and the AWS CLI send, and signing.

No web framework here: the viewer's access rule (``viewer.access``) calls it for a request
as received, and a remote ``durascope worker`` signs its requests to the engine with it.

Verification is split in two so that a request costs the server almost nothing before
it is known to come from a key holder:

* ``parse_authorization`` checks the ``Authorization`` header's shape, the key id and the
  date from the headers alone, before any body is read;
* ``verify_signature`` then recomputes the signature over the request as received (raw
  percent-encoded path, query, exactly the headers the client listed as signed) and over
  the SHA-256 of the body *received*. A declared ``x-amz-content-sha256`` must equal that
  hash; ``UNSIGNED-PAYLOAD`` is refused, so a signature never covers a body it did not see.

Canonicalization is botocore's own (a ``SigV4Auth`` subclass), so what counts as "the same
request" is exactly what boto3 means by it. Errors use the AWS shape with the codes AWS
uses for them (403 ``MissingAuthenticationTokenException``, ``UnrecognizedClientException``,
``InvalidSignatureException``; 400 ``IncompleteSignatureException``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from recorder.errors import ServiceError

ALLOWED_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


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


@dataclass(frozen=True)
class Authorization:
    """A parsed ``Authorization`` header whose key id is known and whose date is fresh."""

    key_id: str
    secret: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    signed_at: datetime


def parse_authorization(
    headers: Mapping[str, str], keys: Mapping[str, str], now: datetime | None = None
) -> Authorization:
    """Everything that can be checked without the body. Raises AuthError."""
    lower = {k.lower(): v for k, v in headers.items()}
    header = lower.get("authorization")
    if not header:
        raise MissingAuthenticationToken("Missing Authentication Token")
    m = _AUTH_RE.match(header)
    if not m:
        raise IncompleteSignature(
            "Authorization header requires Credential, SignedHeaders and Signature in the AWS4-HMAC-SHA256 format"
        )
    secret = keys.get(m["akid"])  # a KeyRing derives runtime keys
    if secret is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    amz_date = lower.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature("X-Amz-Date header is missing or not in the form YYYYMMDDTHHMMSSZ") from None
    now = now or datetime.now(UTC)
    if abs((now - signed_at).total_seconds()) > ALLOWED_SKEW_SECONDS:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is now earlier or later than "
            f"{now.strftime('%Y%m%dT%H%M%SZ')} by more than {ALLOWED_SKEW_SECONDS // 60} minutes."
        )
    if m["date"] != amz_date[:8]:
        raise InvalidSignature("Credential date does not match X-Amz-Date")
    signed = tuple(m["signed"].split(";"))
    if "host" not in signed:
        raise IncompleteSignature("SignedHeaders must include host")
    missing = [h for h in signed if h not in lower and h != "host"]
    if missing:
        raise IncompleteSignature(f"Signed headers are missing from the request: {', '.join(missing)}")
    declared = lower.get("x-amz-content-sha256")
    if declared is not None and not re.fullmatch(r"[0-9a-f]{64}", declared):
        raise InvalidSignature(
            f"x-amz-content-sha256 must be the SHA-256 of the body; {declared[:40]!r} is not "
            "accepted (unsigned and streaming payloads are refused)"
        )
    return Authorization(m["akid"], secret, m["region"], m["service"], signed, m["sig"], amz_date, signed_at)


class _ReceivedRequestSigV4(SigV4Auth):
    """botocore's canonicalization over exactly the headers the client signed and the hash
    of the body as received. (botocore itself would put a declared ``x-amz-content-sha256``
    in place of the hash: ``verify_signature`` first refuses one that differs from it.)"""

    def __init__(self, auth: Authorization, body_sha256: str) -> None:
        super().__init__(Credentials(auth.key_id, auth.secret), auth.service, auth.region)
        self._signed = auth.signed_headers
        self._body_sha256 = body_sha256

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        out = HTTPHeaders()
        for name in self._signed:
            out[name] = request.headers[name]
        return out

    def payload(self, request: AWSRequest) -> str:
        return self._body_sha256


def verify_signature(
    auth: Authorization, method: str, host: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes
) -> None:
    """Recompute the signature of the request as received. Raises InvalidSignature."""
    lower = {k.lower(): v for k, v in headers.items()}
    body_sha256 = hashlib.sha256(body).hexdigest()
    declared = lower.get("x-amz-content-sha256")
    if declared is not None and not hmac.compare_digest(declared, body_sha256):
        raise InvalidSignature("x-amz-content-sha256 does not match the SHA-256 of the body received")
    signed_headers = {h: (host if h == "host" else lower[h]) for h in auth.signed_headers}
    url = f"http://{host}{raw_path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=signed_headers, data=body)
    request.context["timestamp"] = auth.amz_date
    signer = _ReceivedRequestSigV4(auth, body_sha256)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, auth.signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )


def verify(
    method: str,
    host: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, str],
    now: datetime | None = None,
) -> str:
    """Both steps at once (for callers that already hold the body). Returns the key id."""
    auth = parse_authorization(headers, keys, now)
    verify_signature(auth, method, host, raw_path, query, headers, body)
    return auth.key_id


class ReplayCache:
    """Signatures seen within the allowed clock skew, so a captured request is answered once.

    A signature is reserved when its request is verified and kept until it could no longer
    verify (``ALLOWED_SKEW_SECONDS`` after its date). A request the server did not act on
    (answered 5xx or 429) releases it: botocore re-signs a retry, and a retry within the same
    second carries the very same signature. Per process: several engine processes behind one
    address each keep their own (a replay to another process is refused only by the skew).
    """

    def __init__(self, horizon_seconds: float = 2 * ALLOWED_SKEW_SECONDS) -> None:
        self._horizon = horizon_seconds
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def reserve(self, signature: str) -> bool:
        """True the first time a signature is seen (until released or expired)."""
        now = time.monotonic()
        with self._lock:
            if now >= self._next_prune:
                self._seen = {s: t for s, t in self._seen.items() if t > now}
                self._next_prune = now + 10.0
            expires = self._seen.get(signature)
            if expires is not None and expires > now:
                return False
            self._seen[signature] = now + self._horizon
            return True

    def release(self, signature: str) -> None:
        with self._lock:
            self._seen.pop(signature, None)

    def __len__(self) -> int:
        return len(self._seen)


def sign_headers(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    secret: str,
    region: str,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers of a SigV4-signed request (a worker host talking to the engine)."""
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(key_id, secret), "lambda", region).add_auth(request)
    return dict(request.headers.items())


def claims_signature(headers: Mapping[str, Any]) -> bool:
    """Whether a request presents itself as SigV4-signed (an AWS4 ``Authorization`` header)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return isinstance(value, str) and value.startswith("AWS4-HMAC-SHA256")


RUNTIME_KEY_PREFIX = "DSRT."


class KeyRing(Mapping[str, str]):
    """The configured access keys, plus one narrow key per function for its runtimes.

    Handlers run users' code, so the credentials in their environment must not be a viewer
    login or a full API key. Each function's runtimes sign with ``DSRT.<function>``, whose
    secret is derived from the configured secrets (every engine process of a deployment
    derives the same one, and new keys retire it); ``viewer.access`` lets such a key only
    checkpoint and read executions of its own function.
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)
        self._root = hashlib.sha256(
            b"durascope-runtime\0" + b"\0".join(f"{k}:{v}".encode() for k, v in sorted(self._keys.items()))
        ).digest()

    def __getitem__(self, key_id: str) -> str:
        if key_id in self._keys:
            return self._keys[key_id]
        function = runtime_function(key_id)
        if function is None or not self._keys:
            raise KeyError(key_id)
        return hmac.new(self._root, function.encode(), hashlib.sha256).hexdigest()

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def runtime_credentials(self, function: str) -> tuple[str, str]:
        key_id = RUNTIME_KEY_PREFIX + function
        return key_id, self[key_id]


def runtime_function(key_id: str) -> str | None:
    """The function a runtime key belongs to, or None for any other key."""
    if key_id.startswith(RUNTIME_KEY_PREFIX) and len(key_id) > len(RUNTIME_KEY_PREFIX):
        return key_id[len(RUNTIME_KEY_PREFIX) :]
    return None
