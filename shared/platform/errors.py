"""API errors with the old service's JSON body: {"status", "type", "message", "debug", "data"}.

Messages must never carry a secret (tokens, environment values): build them from names and ids only.
"""

from __future__ import annotations

import sys
from typing import Any

STORAGE_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    status = 500
    type = "InternalServerError"

    def __init__(
        self,
        message: str,
        *,
        data: Any = None,
        debug: str = "",
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.data = data
        self.debug = debug
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "type": self.type,
            "message": self.message,
            "debug": self.debug,
            "data": self.data,
        }


class BadRequest(ApiError):
    status, type = 400, "BadRequestException"


class Unauthorized(ApiError):
    status, type = 401, "UnauthorizedException"


class Forbidden(ApiError):
    status, type = 403, "MissingPrivilegeException"


class NotFound(ApiError):
    status, type = 404, "NotFoundException"


class Conflict(ApiError):
    status, type = 409, "ConflictException"


class PayloadTooLarge(ApiError):
    status, type = 413, "PayloadTooLargeException"


class ValidationFailed(ApiError):
    status, type = 422, "ValidationException"


class NotImplementedRunner(ApiError):
    status, type = 422, "NotImplementedException"  # the old service said 501; a request's fault is a 4xx


class BadGateway(ApiError):
    status, type = 502, "BadGatewayException"


class ServiceUnavailable(ApiError):
    """Something the service needs is down for now: callers are told when to try again (Retry-After)."""

    status, type = 503, "ServiceUnavailableException"

    def __init__(self, message: str, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(STORAGE_RETRY_AFTER_SECONDS))


def from_exception(error: Exception) -> ApiError | None:
    """The API error an unexpected exception stands for, when it is one we know: storage that cannot be reached
    (or answers 5xx) is a 503 with Retry-After on every route, never a 500. Built from the error's type alone.

    azure.core is not imported for this: if nothing has loaded its exceptions, no error can be one of them (and a
    cold start does not pay for the SDK)."""
    exceptions = sys.modules.get("azure.core.exceptions")
    if exceptions is None:
        return None
    unreachable = isinstance(error, (exceptions.ServiceRequestError, exceptions.ServiceResponseError))
    failing = isinstance(error, exceptions.HttpResponseError) and (getattr(error, "status_code", None) or 0) >= 500
    if unreachable or failing:
        return ServiceUnavailable(f"storage is not reachable ({type(error).__name__}); try again shortly")
    return None
