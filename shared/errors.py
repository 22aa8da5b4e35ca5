"""The one exception tree. Each error maps to a PROTOCOL error code at the edge."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_EVENT = "unknown_event"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class RealtimeError(Exception):
    """Base of every error a user may be told about."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms  # a hint for rate_limited / unavailable

    def __init_subclass__(cls, code: ErrorCode | None = None, **kwargs: Any) -> None:
        """``class NotFound(RealtimeError, code=ErrorCode.NOT_FOUND)``: the code it maps to."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code


class InvalidJson(RealtimeError, code=ErrorCode.INVALID_JSON): ...


class InvalidPayload(RealtimeError, code=ErrorCode.INVALID_PAYLOAD): ...


class UnknownEvent(RealtimeError, code=ErrorCode.UNKNOWN_EVENT): ...


class Forbidden(RealtimeError, code=ErrorCode.FORBIDDEN): ...


class NotFound(RealtimeError, code=ErrorCode.NOT_FOUND): ...


class Conflict(RealtimeError, code=ErrorCode.CONFLICT): ...


class RateLimited(RealtimeError, code=ErrorCode.RATE_LIMITED): ...


class PayloadTooLarge(RealtimeError, code=ErrorCode.PAYLOAD_TOO_LARGE): ...


class Unavailable(RealtimeError, code=ErrorCode.UNAVAILABLE): ...


class Overloaded(Unavailable):
    """Refused before it was taken (a full queue, a service falling behind): the command
    was *not* executed, so resending it later is always safe."""


class InternalError(RealtimeError, code=ErrorCode.INTERNAL): ...


class AuthError(Exception):
    """The token is missing or not acceptable: the connection is refused (close 4401)."""
