"""How chat looks on the wire (PROTOCOL §4): push, ack and listing payloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from services.chat.domain import Conversation, Markers, Message, Status, StatusChange, status_of
from shared.protocol import chat as wire
from shared.protocol.base import ServerPush
from shared.protocol.envelope import fit

Push = TypeVar("Push", bound=ServerPush)


def received(message: Message) -> wire.MessageReceived:
    """``message_received``."""
    return wire.MessageReceived.model_validate(message, from_attributes=True)


def _history_message(message: Message, status: Status) -> dict[str, Any]:
    """A ``HistoryMessage``: the message as clients see it, with its ``status``."""
    shown = wire.ChatMessage.model_validate(message, from_attributes=True)
    return {**shown.model_dump(), "status": status.value}


def sent_ack(message: Message) -> dict[str, Any]:
    """The ``ack`` of ``send_message``."""
    return wire.MessageSent.model_validate(message, from_attributes=True).model_dump()


def changed(
    message: Message, push: type[Push], ack: type[BaseModel]
) -> tuple[Push, dict[str, Any]]:
    """A changed message, as stored: its ``push`` to the participants and the data of its
    ``ack`` (``message_edited`` and the ack of ``edit_message``, for instance)."""
    shown = push.model_validate(message, from_attributes=True)
    return shown, ack.model_validate(message, from_attributes=True).model_dump()


def status(change: StatusChange) -> wire.MessageStatus:
    """``message_status``."""
    return wire.MessageStatus.model_validate(change, from_attributes=True)


def history(
    conversation_id: str, page: list[Message], markers: Mapping[str, Markers], has_more: bool
) -> dict[str, Any]:
    """The ``ack`` of ``get_history``: the newest of the page that fit in one frame (the
    client asks for the older ones with ``before_seq``, as ``has_more`` says)."""
    messages = [_history_message(m, status_of(m, markers)) for m in page]
    fitted = fit(messages, keep_last=True)
    return {
        "conversation_id": conversation_id,
        "messages": fitted,
        "has_more": has_more or len(fitted) < len(messages),
    }


def summary(
    conversation: Conversation,
    me: str,
    last: Message | None,
    markers: Mapping[str, Markers],
    unread_count: int,
) -> wire.ConversationSummary:
    return wire.ConversationSummary(
        conversation_id=conversation.id,
        peer_id=conversation.peer_of(me),
        last_message=_history_message(last, status_of(last, markers)) if last else None,
        unread_count=unread_count,
    )


def conversation_list(summaries: list[wire.ConversationSummary]) -> dict[str, Any]:
    """The ``ack`` of ``list_conversations``: the most recently active that fit in a frame."""
    return {"conversations": fit([s.model_dump() for s in summaries])}


def typing_notice(
    conversation_id: str, user_id: str, user_name: str, *, started: bool
) -> wire.TypingNotice:
    """``user_typing`` (``started``) / ``user_stopped_typing``."""
    notice = wire.TypingStarted if started else wire.TypingStopped
    return notice(conversation_id=conversation_id, user_id=user_id, user_name=user_name)
