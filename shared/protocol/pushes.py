"""Every frame the server sends, by event name, with the schema of its ``data``.

The counterpart of ``registry.CLIENT_EVENTS``; together they generate docs/asyncapi.yaml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.protocol import calls, chat, help
from shared.protocol.presence import MentorStatusView


class Connected(BaseModel):
    """The first frame on every connection."""

    user_id: str
    role: Literal["student", "mentor"]
    name: str
    connection_id: str
    server_time: str
    heartbeat_interval_s: float
    protocol_version: Literal[1]


class MentorStatusSnapshot(BaseModel):
    mentors: list[MentorStatusView]


class Pong(BaseModel):
    server_time: str


class ErrorData(BaseModel):
    code: str
    message: str
    event: str | None
    retry_after_ms: int | None = None  # with rate_limited / unavailable: when to try again


SERVER_PUSHES: dict[str, type[BaseModel]] = {
    "connected": Connected,
    "pong": Pong,
    "error": ErrorData,
    "mentor_status_snapshot": MentorStatusSnapshot,
    "mentor_status_update": MentorStatusView,
    chat.MESSAGE_RECEIVED: chat.ChatMessage,
    chat.MESSAGE_STATUS: chat.MessageStatus,
    chat.USER_TYPING: chat.TypingNotice,
    chat.USER_STOPPED_TYPING: chat.TypingNotice,
    chat.MESSAGE_EDITED: chat.MessageEdited,
    chat.MESSAGE_DELETED: chat.MessageDeleted,
    calls.CALL_INITIATED: calls.CallInitiatedPush,
    calls.CALL_ACCEPTED: calls.CallAcceptedPush,
    calls.CALL_REJECTED: calls.CallRejectedPush,
    calls.CALL_ENDED: calls.CallEndedPush,
    calls.CALL_TIMEOUT: calls.CallTimeoutPush,
    calls.CALL_SIGNAL: calls.CallSignalPush,
    help.HELP_REQUEST_RECEIVED: help.HelpRequestView,
    help.HELP_REQUEST_ACCEPTED: help.HelpRequestAccepted,
    help.HELP_REQUEST_CLOSED: help.HelpRequestClosed,
    help.HELP_REQUEST_DECLINED: help.HelpRequestDeclined,
    help.HELP_REQUEST_EXPIRED: help.HelpRequestExpired,
}
