"""Every exception the SDK raises, and how an ``error`` frame becomes one.

All of them derive from :class:`InstantMentorError`, which carries the protocol's error
``code``, a human ``message`` and the ``event`` the error is about (``None`` when unknown).

Two families:

* **Server refusals** — built from an ``error`` frame by :func:`error_from_frame`; one class per
  PROTOCOL v1 code (``forbidden`` → :class:`Forbidden`, …). An unknown code becomes the base
  class, so a newer server never breaks an older SDK.
* **Local conditions** — the SDK's own: :class:`RequestTimeout`, :class:`NotConnected`,
  :class:`ConnectionLost`, :class:`ClientClosed`, :class:`AuthenticationFailed`,
  :class:`ProtocolViolation`. Their codes are not wire codes (except that ``NotConnected`` and
  ``ConnectionLost`` are kinds of :class:`Unavailable`, code ``"unavailable"``).

Whether a failed request may have taken effect on the server:

========================  =========================================================
``NotConnected``          no: it was never sent
``ClientClosed``          no when raised before sending; unknown for one in flight
``ConnectionLost``        unknown: sent, the connection dropped before the reply
``RequestTimeout``        unknown: sent, no reply within the timeout
``Unavailable`` (server)  unknown: the owning service did not answer in time
any other server code     no: the server refused it
========================  =========================================================

"Unknown" outcomes are safe to retry where the event is idempotent: ``send_message`` with the
same ``client_msg_id`` (the SDK always sets one), and every read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InstantMentorError(Exception):
    """Base of every SDK error. ``code`` is the protocol error code (or a local one)."""

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, event: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.event = event

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        """``class NotFound(InstantMentorError, code="not_found")``: the class's error code."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __str__(self) -> str:
        where = f" ({self.event})" if self.event else ""
        return f"{self.code}{where}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, event={self.event!r})"


# -- server refusals (PROTOCOL §2 error codes) ---------------------------------------------


class InvalidJson(InstantMentorError, code="invalid_json"): ...


class InvalidPayload(InstantMentorError, code="invalid_payload"):
    """The data failed the event's schema or rules (e.g. calling or messaging yourself)."""


class UnknownEvent(InstantMentorError, code="unknown_event"): ...


class Forbidden(InstantMentorError, code="forbidden"):
    """Not allowed for this user or role (e.g. a student setting a mentor status)."""


class NotFound(InstantMentorError, code="not_found"):
    """No such call / conversation / request, or not one this user is a party to."""


class Conflict(InstantMentorError, code="conflict"):
    """Not allowed in the current state (a second accept, accepting an ended call, …)."""


class RateLimited(InstantMentorError, code="rate_limited"):
    """The connection sent more than its rate allows; the request was dropped (not run)."""


class PayloadTooLarge(InstantMentorError, code="payload_too_large"): ...


class Unavailable(InstantMentorError, code="unavailable"):
    """The request could not be completed now; its outcome may be unknown (see subclasses)."""


class InternalError(InstantMentorError, code="internal"): ...


ERROR_CLASSES: dict[str, type[InstantMentorError]] = {
    cls.code: cls
    for cls in (
        InvalidJson,
        InvalidPayload,
        UnknownEvent,
        Forbidden,
        NotFound,
        Conflict,
        RateLimited,
        PayloadTooLarge,
        Unavailable,
        InternalError,
    )
}


def error_from_frame(data: Mapping[str, Any] | None) -> InstantMentorError:
    """The exception for the ``data`` of an ``error`` frame: ``{"code", "message", "event"}``.

    Never raises: a malformed ``data`` gives an :class:`InstantMentorError` with code
    ``internal``; an unknown code gives the base class with that code.
    """
    if not isinstance(data, Mapping):
        return InternalError(f"malformed error frame: {data!r}")
    code = data.get("code")
    code = code if isinstance(code, str) and code else "internal"
    message = data.get("message")
    message = message if isinstance(message, str) else code
    event = data.get("event")
    event = event if isinstance(event, str) else None
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return InstantMentorError(message, code=code, event=event)
    return cls(message, event=event)


# -- local conditions ----------------------------------------------------------------------


class RequestTimeout(InstantMentorError, TimeoutError, code="timeout"):
    """No ``ack``/``error`` within the request timeout. The request was sent: its outcome is
    unknown. Also a :class:`TimeoutError`."""


class NotConnected(Unavailable):
    """No connection became available within the request timeout; the request was **not**
    sent. Safe to retry."""


class ServerBusy(NotConnected):
    """The server refused the connection for now (close 1013) and said when to come back:
    ``retry_after_s``. The SDK waits that long, plus its own jitter, before the next try."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConnectionLost(Unavailable):
    """The connection dropped after the request was sent and before its reply (outcome
    unknown). Idempotent requests are resent by the SDK instead; this reaches the caller only
    for the others (call and help actions, receipts, status changes, typing)."""


class ClientClosed(InstantMentorError, code="closed"):
    """The client was closed (by :meth:`close`, or for good after an authentication
    failure / with ``reconnect=False``)."""


class AuthenticationFailed(InstantMentorError, code="unauthorized"):
    """The server refused the token (close 4401 or HTTP 401/403). Never retried."""


class ProtocolViolation(InstantMentorError, code="protocol"):
    """The server sent something this SDK cannot understand (e.g. no ``connected`` first)."""


__all__ = [
    "ERROR_CLASSES",
    "AuthenticationFailed",
    "ClientClosed",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "InstantMentorError",
    "InternalError",
    "InvalidJson",
    "InvalidPayload",
    "NotConnected",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolViolation",
    "RateLimited",
    "RequestTimeout",
    "ServerBusy",
    "UnknownEvent",
    "Unavailable",
    "error_from_frame",
]
