"""Checkpoint tokens, callback ids and state markers: opaque, standard base64 (docs/protocol.md#tokens).

A token names (execution, invocation, sequence) plus a random nonce; it is valid
only while it equals the one stored in ``engine_state``, so the store, not a secret
key, decides validity and several engine processes agree without sharing keys.
"""

from __future__ import annotations

import base64
import json
import secrets

from recorder.errors import InvalidParameterValueException


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def new_token(execution_id: str, invocation_seq: int, token_seq: int) -> str:
    return _b64(f"{execution_id}.{invocation_seq}.{token_seq}.{secrets.token_hex(6)}".encode())


def new_callback_id(execution_id: str, op_id: str) -> str:
    return _b64(json.dumps({"e": execution_id, "o": op_id, "n": secrets.token_hex(8)}, separators=(",", ":")).encode())


def state_marker(token: str, next_seq: int) -> str:
    return _b64(json.dumps({"t": token[-16:], "s": next_seq}, separators=(",", ":")).encode())


def parse_state_marker(marker: str, token: str) -> int:
    try:
        data = json.loads(base64.b64decode(marker, validate=True))
        if data["t"] != token[-16:]:
            raise ValueError("marker belongs to another token")
        seq = data["s"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**31:
            raise ValueError("out of range")
        return seq
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidParameterValueException(
            "Invalid Marker: it is unknown or belongs to another checkpoint token"
        ) from exc


def history_marker(position: int) -> str:
    return _b64(json.dumps({"p": position}, separators=(",", ":")).encode())


def parse_history_marker(marker: str) -> int:
    try:
        value = json.loads(base64.b64decode(marker, validate=True))["p"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
            raise ValueError("out of range")
        return value
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidParameterValueException("Invalid Marker") from exc
