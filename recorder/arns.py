"""ARN formats (docs/protocol.md#arns).

Execution ids are UUIDs (AWS does not document the real format; docs/protocol.md#choices). The execution id is the
last ARN segment and doubles as the Id of the EXECUTION operation, which is how the
SDK finds the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recorder.errors import InvalidParameterValueException, ResourceNotFoundException

# \Z, not $: with re.match, $ also accepts a trailing newline ("name\n").
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}\Z")
_EXEC_ARN_RE = re.compile(
    r"^arn:aws:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<function>[a-zA-Z0-9_-]{1,64})"
    r":(?P<version>\$LATEST(?:\.PUBLISHED)?|\d+)/durable-execution/(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"/(?P<id>[a-zA-Z0-9_-]{1,64})\Z"
)
_FUNCTION_ARN_RE = re.compile(
    r"^(?:arn:aws:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:)?"
    r"(?P<function>[a-zA-Z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]{1,128}))?\Z"
)
_PARTIAL_ARN_RE = re.compile(
    r"^(?P<account>\d{12}):function:(?P<function>[a-zA-Z0-9_-]{1,64})(?::(?P<qualifier>[$.a-zA-Z0-9_-]+))?\Z"
)


@dataclass(frozen=True)
class ExecutionArn:
    region: str
    account: str
    function: str
    version: str
    name: str
    execution_id: str

    def __str__(self) -> str:
        return (
            f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function}:{self.version}"
            f"/durable-execution/{self.name}/{self.execution_id}"
        )

    @classmethod
    def parse(cls, text: str) -> ExecutionArn:
        if not isinstance(text, str) or len(text) > 1024:
            raise InvalidParameterValueException("DurableExecutionArn is not a valid durable execution ARN")
        m = _EXEC_ARN_RE.match(text)
        if not m:
            raise InvalidParameterValueException(
                f"DurableExecutionArn is not a valid durable execution ARN: {text[:200]}"
            )
        return cls(m["region"], m["account"], m["function"], m["version"], m["name"], m["id"])


def function_arn(region: str, account: str, function: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{region}:{account}:function:{function}"
    return f"{base}:{qualifier}" if qualifier else base


@dataclass(frozen=True)
class FunctionRef:
    name: str
    qualifier: str | None


def parse_function_name(text: str) -> FunctionRef:
    """Accept a name, a partial ARN (``123456789012:function:name``) or a full ARN."""
    if not isinstance(text, str) or not text:
        raise InvalidParameterValueException("FunctionName must be a non-empty string")
    m = _FUNCTION_ARN_RE.match(text) or _PARTIAL_ARN_RE.match(text)
    if not m:
        raise ResourceNotFoundException(f"Function not found: {text[:200]}")
    return FunctionRef(m["function"], m["qualifier"])
