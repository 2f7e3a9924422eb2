"""AWS-shaped errors raised by the control plane.

Each class carries the HTTP status and the exception name botocore maps to a typed
exception (sent as ``x-amzn-ErrorType``), and spells the message member the way the
Lambda API model spells it (``message`` or ``Message``). The REST layer renders them;
the in-process service client turns them into the SDK's ``CheckpointError``.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    code = "ServiceException"
    status = 500
    message_key = "Message"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        # docs/protocol.md#rest-api (unconfirmed): the real service may send a fault class in Type;
        # botocore ignores it, so we send the exception name, which reads better.
        return {"Type": self.code, self.message_key: self.message, **self.extra}

    def to_boto_response(self) -> dict[str, Any]:
        """The dict botocore puts on ``ClientError.response``, for the in-process path."""
        return {
            "Error": {"Code": self.code, "Message": self.message},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }


class InvalidParameterValueException(ServiceError):
    code = "InvalidParameterValueException"
    status = 400
    message_key = "message"


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


class CallbackTimeoutException(ServiceError):
    code = "CallbackTimeoutException"
    status = 400


class ResourceConflictException(ServiceError):
    code = "ResourceConflictException"
    status = 409
    message_key = "message"


class DurableExecutionAlreadyStartedException(ServiceError):
    code = "DurableExecutionAlreadyStartedException"
    status = 409


class RequestTooLargeException(ServiceError):
    code = "RequestTooLargeException"
    status = 413
    message_key = "message"


class TooManyRequestsException(ServiceError):
    code = "TooManyRequestsException"
    status = 429
    message_key = "message"


INVALID_TOKEN_MESSAGE = "Invalid checkpoint token"


def invalid_token(detail: str = "") -> InvalidParameterValueException:
    # The SDK retries only when the message starts exactly with this text (docs/protocol.md#tokens).
    suffix = f": {detail}" if detail else ""
    return InvalidParameterValueException(f"{INVALID_TOKEN_MESSAGE}{suffix}")
