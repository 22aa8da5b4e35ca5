"""PROTOCOL §4 — chat."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from shared.protocol.base import EntityId, Payload, UserId, not_blank

MessageText = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(not_blank)]
Seq = Annotated[int, Field(ge=0)]


class _ConversationTarget(Payload):
    """Names a conversation directly or by the other participant."""

    recipient_id: UserId | None = None
    conversation_id: EntityId | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _ConversationTarget:
        if self.recipient_id is None and self.conversation_id is None:
            raise ValueError("recipient_id or conversation_id is required")
        return self


class SendMessage(_ConversationTarget):
    text: MessageText
    client_msg_id: str | None = Field(default=None, min_length=1, max_length=64)
    call_id: EntityId | None = None


class MessageReceipt(Payload):
    """``message_delivered`` and ``message_read``: an up-to marker."""

    conversation_id: EntityId
    up_to_seq: Annotated[int, Field(ge=1)]


class Typing(_ConversationTarget):
    """``user_typing`` and ``user_stopped_typing``."""


class GetHistory(Payload):
    conversation_id: EntityId
    before_seq: Annotated[int, Field(ge=1)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class Sync(Payload):
    since: dict[EntityId, Seq] = Field(default_factory=dict, max_length=1000)
