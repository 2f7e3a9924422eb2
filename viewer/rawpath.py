"""The request path exactly as the client sent it (still percent-encoded).

Durable-execution ARNs and CallbackIds contain ``/``, which botocore sends as ``%2F``; a
decoded path cannot be split safely, and a SigV4 signature covers the path as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def raw_path(environ: Mapping[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        path = raw.split("?", 1)[0].split("#", 1)[0]
        if "://" in path[:10]:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        script = environ.get("SCRIPT_NAME") or ""
        if script and path.startswith(script):
            path = path[len(script) :]
        return path or "/"
    # No raw URI from this server: %2F is already decoded, so callers that split ARNs
    # fall back to re-joining segments.
    path_info = environ.get("PATH_INFO", "")
    return quote(path_info.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")
