"""Typed views of what the server sends (PROTOCOL v1): ``ack`` data and push data.

Every class has ``from_dict(data)``; fields the server adds later are ignored, a missing
required field raises :class:`~instantmentor_client.errors.ProtocolViolation`. Times are the
server's ISO-8601 strings, as on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from instantmentor_client._wire import build, parse_list


class _Model:
    """What every typed view shares: ``from_dict`` builds it from the wire's ``data``."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return build(cls, data)


# -- connection ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session(_Model):
    """The ``connected`` frame: who the server says we are, on which connection."""

    user_id: str
    role: str
    name: str
    connection_id: str
    server_time: str
    heartbeat_interval_s: float
    protocol_version: int


@dataclass(frozen=True, slots=True)
class Pong:
    """The reply to ``ping``; ``rtt_s`` is measured by the client."""

    server_time: str
    rtt_s: float


# -- calls (PROTOCOL §3) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallInvitation(_Model):
    """The ack of ``initiate_call``. ``state`` is ``ringing``, or ``rejected`` with ``reason``
    (``offline``/``busy``) when the system refused the call at once."""

    call_id: str
    state: str
    expires_at: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallState(_Model):
    """The ack of ``accept_call`` / ``reject_call`` / ``end_call``."""

    call_id: str
    state: str


@dataclass(frozen=True, slots=True)
class IncomingCall(_Model):
    """Push ``call_initiated`` (to the receiver)."""

    call_id: str
    caller_id: str
    caller_name: str
    caller_role: str
    receiver_id: str
    call_type: str
    created_at: str
    expires_at: str
    call_data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CallAccepted(_Model):
    """Push ``call_accepted``."""

    call_id: str
    accepted_by: str
    accepted_at: str
    call_data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CallRejected(_Model):
    """Push ``call_rejected``; ``rejected_by`` is ``None`` when the system rejected."""

    call_id: str
    rejected_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallEnded(_Model):
    """Push ``call_ended``; ``reason`` is ``cancelled``, ``hangup`` or ``connection_lost``."""

    call_id: str
    reason: str
    duration_s: float
    ended_by: str | None = None


@dataclass(frozen=True, slots=True)
class CallTimeout(_Model):
    """Push ``call_timeout``: nobody answered; the call is ``missed``."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallSignal(_Model):
    """Push ``call_signal`` (WebRTC offer/answer/ICE from the other party)."""

    call_id: str
    from_user_id: str
    signal: dict[str, Any]


# -- chat (PROTOCOL §4) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatMessage(_Model):
    """Push ``message_received``, and a message of ``get_history`` (which adds ``status``:
    ``sent``/``delivered``/``read``)."""

    message_id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    recipient_id: str
    text: str | None  # None once deleted
    sent_at: str
    client_msg_id: str | None = None
    call_id: str | None = None
    status: str | None = None
    edited_at: str | None = None
    deleted_at: str | None = None


@dataclass(frozen=True, slots=True)
class MessageChange(_Model):
    """Push ``message_edited`` / ``message_deleted`` (to both participants): the message's
    text now (None once deleted), and when it changed."""

    conversation_id: str
    message_id: str
    seq: int
    text: str | None
    edited_at: str | None = None
    deleted_at: str | None = None


@dataclass(frozen=True, slots=True)
class MessageChangeAck(_Model):
    """The ack of ``edit_message`` (``edited_at``) or ``delete_message`` (``deleted_at``)."""

    message_id: str
    edited_at: str | None = None
    deleted_at: str | None = None


@dataclass(frozen=True, slots=True)
class MessageSent(_Model):
    """The ack of ``send_message`` (the first one again for a repeated ``client_msg_id``)."""

    message_id: str
    conversation_id: str
    seq: int
    sent_at: str
    client_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class History(_Model):
    """The ack of ``get_history``: ``messages`` in ascending ``seq``; ``has_more`` when older
    ones remain (pass ``messages[0].seq`` as the next ``before_seq``)."""

    conversation_id: str
    messages: list[ChatMessage]
    has_more: bool

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        messages = parse_list(data, "messages", ChatMessage.from_dict)
        return build(cls, data, messages=messages)


@dataclass(frozen=True, slots=True)
class ConversationSummary(_Model):
    """One entry of ``list_conversations``; ``unread_count`` counts the peer's messages above
    this user's read marker."""

    conversation_id: str
    peer_id: str
    unread_count: int
    last_message: ChatMessage | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        last = data.get("last_message")
        return build(cls, data, last_message=None if last is None else ChatMessage.from_dict(last))


@dataclass(frozen=True, slots=True)
class MessageStatus(_Model):
    """Push ``message_status`` (to the sender): the peer's marker moved to ``up_to_seq``."""

    conversation_id: str
    up_to_seq: int
    status: str
    by_user_id: str
    at: str


@dataclass(frozen=True, slots=True)
class TypingNotice(_Model):
    """Push ``user_typing`` / ``user_stopped_typing``."""

    conversation_id: str
    user_id: str
    user_name: str


# -- presence (PROTOCOL §5) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MentorStatus(_Model):
    """A mentor's status: the ack of ``mentor_available``/``mentor_busy``, an entry of
    ``get_mentors`` / ``mentor_status_snapshot``, and push ``mentor_status_update``."""

    mentor_id: str
    name: str
    status: str
    online: bool
    updated_at: str
    status_message: str | None = None
    status_data: dict[str, Any] | None = None


def mentors_from(data: Mapping[str, Any]) -> list[MentorStatus]:
    """The ``mentors`` list of ``get_mentors`` / ``mentor_status_snapshot``."""
    return parse_list(data, "mentors", MentorStatus.from_dict)


# -- help requests (PROTOCOL §6) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HelpRequest(_Model):
    """A help request: push ``help_request_received``, entry of ``list_help_requests``.
    ``mentor_id`` is ``None`` for a broadcast."""

    request_id: str
    student_id: str
    student_name: str
    subject: str
    message: str
    urgency: str
    status: str
    created_at: str
    expires_at: str
    mentor_id: str | None = None


@dataclass(frozen=True, slots=True)
class HelpRequestCreated(_Model):
    """The ack of ``student_request_help``; ``delivered_to`` counts the mentors shown it now."""

    request_id: str
    delivered_to: int
    expires_at: str
    status: str = "open"


@dataclass(frozen=True, slots=True)
class HelpRequestUpdate(_Model):
    """The ack of ``accept_help_request`` (``accepted``), ``cancel_help_request``
    (``cancelled``) and ``decline_help_request`` (``status`` ``None``)."""

    request_id: str
    status: str | None = None


@dataclass(frozen=True, slots=True)
class HelpRequestAccepted(_Model):
    """Push ``help_request_accepted`` (to the student)."""

    request_id: str
    mentor_id: str
    mentor_name: str


@dataclass(frozen=True, slots=True)
class HelpRequestClosed(_Model):
    """Push ``help_request_closed`` (to the other mentors shown it); ``reason`` is
    ``accepted``, ``cancelled`` or ``expired``."""

    request_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class HelpRequestDeclined(_Model):
    """Push ``help_request_declined`` (to the student, targeted requests only)."""

    request_id: str
    mentor_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HelpRequestExpired(_Model):
    """Push ``help_request_expired`` (to the student)."""

    request_id: str


# -- pushes --------------------------------------------------------------------------------

PUSH_TYPES: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "connected": Session.from_dict,
    "call_initiated": IncomingCall.from_dict,
    "call_accepted": CallAccepted.from_dict,
    "call_rejected": CallRejected.from_dict,
    "call_ended": CallEnded.from_dict,
    "call_timeout": CallTimeout.from_dict,
    "call_signal": CallSignal.from_dict,
    "message_received": ChatMessage.from_dict,
    "message_status": MessageStatus.from_dict,
    "message_edited": MessageChange.from_dict,
    "message_deleted": MessageChange.from_dict,
    "user_typing": TypingNotice.from_dict,
    "user_stopped_typing": TypingNotice.from_dict,
    "mentor_status_update": MentorStatus.from_dict,
    "mentor_status_snapshot": mentors_from,
    "help_request_received": HelpRequest.from_dict,
    "help_request_accepted": HelpRequestAccepted.from_dict,
    "help_request_closed": HelpRequestClosed.from_dict,
    "help_request_declined": HelpRequestDeclined.from_dict,
    "help_request_expired": HelpRequestExpired.from_dict,
}


@dataclass(frozen=True, slots=True)
class Event:
    """A push as the app sees it: the server's ``event`` name and ``data``.

    ``payload`` parses ``data`` into the matching class of this module (``message_received``
    → :class:`ChatMessage`, ``mentor_status_snapshot`` → ``list[MentorStatus]``, …), or
    returns ``data`` itself for events it does not know. Besides the server's pushes, the SDK
    emits ``connected`` on every (re)connection, ``error`` for an error frame that answers no
    request of ours, and the local event ``disconnected`` ``{code, reason, reconnecting}``.
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> object:
        parse = PUSH_TYPES.get(self.name)
        return self.data if parse is None else parse(self.data)


__all__ = [
    "PUSH_TYPES",
    "CallAccepted",
    "CallEnded",
    "CallInvitation",
    "CallRejected",
    "CallSignal",
    "CallState",
    "CallTimeout",
    "ChatMessage",
    "ConversationSummary",
    "Event",
    "HelpRequest",
    "HelpRequestAccepted",
    "HelpRequestClosed",
    "HelpRequestCreated",
    "HelpRequestDeclined",
    "HelpRequestExpired",
    "HelpRequestUpdate",
    "History",
    "IncomingCall",
    "MentorStatus",
    "MessageChange",
    "MessageChangeAck",
    "MessageSent",
    "MessageStatus",
    "Pong",
    "Session",
    "TypingNotice",
    "mentors_from",
]
