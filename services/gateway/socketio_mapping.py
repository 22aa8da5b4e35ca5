"""PROTOCOL §8, with no I/O: how a Socket.IO event maps onto a ``/ws`` frame and back.

A Socket.IO client emits ``(event, data)`` and gets its reply through the acknowledgement;
the gateway handles the frame ``{"event", "data", "ref"}`` a ``/ws`` client would have sent,
and turns its ``ack``/``error``/``pong`` back into ``{"ok": ...}``. Pushes keep their name and
data. The camelCase field names of apps written against the original Socket.IO server are
accepted here, in one table, and nowhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from services.gateway.frames import FrameError, ParsedFrame, parse_decoded
from shared.auth import Role, bearer_token
from shared.errors import InvalidPayload

# camelCase alias → the protocol's field; top-level fields of an event's data only (the
# opaque objects inside, `signal`, `call_data`, `status_data`, are the clients' own).
ALIASES: dict[str, str] = {
    "receiverId": "receiver_id",
    "callType": "call_type",
    "callData": "call_data",
    "callId": "call_id",
    "callerId": "caller_id",  # no client event has it: ignored, like any user id a client sends
    "statusMessage": "status_message",
    "statusData": "status_data",
    "mentorId": "mentor_id",  # "broadcast_to_mentors" keeps its meaning
    "recipientId": "recipient_id",
    "conversationId": "conversation_id",
    "clientMsgId": "client_msg_id",
    "requestId": "request_id",
}

REPLIES = frozenset({"ack", "error", "pong"})  # frames that answer a request (by its ref)


def canonical(data: Any) -> Any:
    """``data`` with its camelCase fields renamed (anything but an object is left as it is,
    for the schema check to refuse). Both names with different values → invalid_payload."""
    if not isinstance(data, dict) or not any(key in ALIASES for key in data):
        return data
    renamed: dict[str, Any] = {}
    for key, value in data.items():
        name = ALIASES.get(key) or key
        if name in renamed and renamed[name] != value:
            alias = next(a for a, n in ALIASES.items() if n == name)
            raise InvalidPayload(f"{alias} and {name} differ; send one of them")
        renamed[name] = value
    return renamed


def parse_event(
    event: str, args: tuple[Any, ...], ref: str, role: Role, max_bytes: int
) -> ParsedFrame:
    """The Socket.IO event ``event`` with arguments ``args`` (the acknowledgement callback
    not among them), checked as the ``/ws`` frame it stands for; raises :class:`FrameError`."""
    if len(args) > 1:
        error = InvalidPayload(f"{event} takes one argument (its data), not {len(args)}")
        raise FrameError(error, ref, event)
    try:
        data = canonical(args[0]) if args else {}
    except InvalidPayload as exc:
        raise FrameError(exc, ref, event) from None
    return parse_decoded({"event": event, "data": data, "ref": ref}, role, max_bytes)


def acknowledgement(frame: dict[str, Any]) -> dict[str, Any]:
    """The acknowledgement of a request, from its reply frame (``ack``, ``pong`` or ``error``):
    ``{"ok": true, "data"}`` or ``{"ok": false, "error": {"code", "message"}}`` (plus
    ``retry_after_ms`` when the error carries it)."""
    data = frame.get("data") or {}
    if frame.get("event") != "error":
        return {"ok": True, "data": data}
    error = {"code": data.get("code"), "message": data.get("message")}
    if data.get("retry_after_ms") is not None:
        error["retry_after_ms"] = data["retry_after_ms"]
    return {"ok": False, "error": error}


def refusal_data(code: int, message: str, retry_after_ms: int | None = None) -> dict[str, Any]:
    """The ``data`` of a ``connect_error``: the code ``/ws`` would close with (4401, 4429,
    1013, 1012) and why."""
    data: dict[str, Any] = {"code": code, "message": message}
    if retry_after_ms is not None:
        data["retry_after_ms"] = retry_after_ms
    return data


def token_of(auth: Any, query_string: str, authorization: str | None) -> str | None:
    """The JWT of a Socket.IO connect: the ``auth`` payload's ``token``, else the ``token``
    query parameter, else ``Authorization: Bearer``."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str) and auth["token"]:
        return str(auth["token"])
    query = parse_qs(query_string).get("token")
    if query and query[0]:
        return query[0]
    return bearer_token(authorization)
