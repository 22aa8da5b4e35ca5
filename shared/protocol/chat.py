"""PROTOCOL §4 — chat."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from shared.protocol.base import ClientEvent, EntityId, ServerPush, Timestamp, UserId, not_blank

MessageText = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(not_blank)]
MAX_SEQ = 2**53  # PROTOCOL v1.1 §2: integers within ±2^53 (larger ones broke SQLite binds)
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


class ChatEvent(ClientEvent):
    SERVICE: ClassVar[str] = "chat"


class _ConversationTarget(ChatEvent):
    """Names a conversation directly or by the other participant."""

    recipient_id: UserId | None = None
    conversation_id: EntityId | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _ConversationTarget:
        if self.recipient_id is None and self.conversation_id is None:
            raise ValueError("recipient_id or conversation_id is required")
        return self


class SendMessage(_ConversationTarget):
    EVENT = "send_message"

    text: MessageText
    client_msg_id: str | None = Field(default=None, min_length=1, max_length=64)
    call_id: EntityId | None = None


class MessageReceipt(ChatEvent):
    """``message_delivered`` and ``message_read``: an up-to marker."""

    conversation_id: EntityId
    up_to_seq: Annotated[int, Field(ge=1, le=MAX_SEQ)]


class MessageDelivered(MessageReceipt):
    """The reader's client has the messages up to ``up_to_seq``."""

    EVENT = "message_delivered"


class MessageRead(MessageReceipt):
    """The reader has read the messages up to ``up_to_seq``."""

    EVENT = "message_read"


class Typing(_ConversationTarget):
    """``user_typing`` and ``user_stopped_typing``."""

    TRANSIENT = True


class UserTyping(Typing):
    """The sender is typing (a ``user_stopped_typing`` follows by itself after a while)."""

    EVENT = "user_typing"


class UserStoppedTyping(Typing):
    """The sender stopped typing."""

    EVENT = "user_stopped_typing"


class GetHistory(ChatEvent):
    EVENT = "get_history"

    conversation_id: EntityId
    before_seq: Annotated[int, Field(ge=1, le=MAX_SEQ)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class ListConversations(ChatEvent):
    """The user's conversations, most recently active first."""

    EVENT = "list_conversations"


class Sync(ChatEvent):
    EVENT = "sync"

    since: dict[EntityId, Seq] = Field(default_factory=dict, max_length=1000)


class DeleteMessage(ChatEvent):
    """``delete_message``: by the message's sender."""

    EVENT = "delete_message"

    conversation_id: EntityId
    message_id: EntityId


class EditMessage(DeleteMessage):
    """``edit_message``: by the message's sender, within ``IM_EDIT_WINDOW_S`` of ``sent_at``."""

    EVENT = "edit_message"

    text: MessageText


# -- What the chat service sends (PROTOCOL §4) -----------------

MESSAGE_RECEIVED = "message_received"
MESSAGE_STATUS = "message_status"
USER_TYPING = "user_typing"
USER_STOPPED_TYPING = "user_stopped_typing"
MESSAGE_EDITED = "message_edited"
MESSAGE_DELETED = "message_deleted"

DeliveryStatus = Literal["sent", "delivered", "read"]


class ChatMessage(BaseModel):
    """A message as clients see it."""

    message_id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    recipient_id: str
    text: str | None  # null once deleted
    sent_at: Timestamp
    client_msg_id: str | None
    call_id: str | None
    edited_at: Timestamp | None = None
    deleted_at: Timestamp | None = None

    @model_validator(mode="after")
    def _no_text_once_deleted(self) -> ChatMessage:
        if self.deleted_at is not None:
            self.text = None
        return self


class MessageReceived(ChatMessage, ServerPush):
    """``message_received``: to the recipient and to the sender's other connections."""

    EVENT = MESSAGE_RECEIVED


class HistoryMessage(ChatMessage):
    """A message in ``get_history`` / ``list_conversations``: ``status`` from the recipient's
    up-to markers."""

    status: DeliveryStatus


class MessageSent(BaseModel):
    """The ``ack`` of ``send_message`` (the first one again for a repeated ``client_msg_id``)."""

    message_id: str
    conversation_id: str
    seq: int
    sent_at: Timestamp
    client_msg_id: str | None


class MessageStatus(ServerPush):
    """``message_status``: to the sender of the messages up to ``up_to_seq``."""

    EVENT = MESSAGE_STATUS

    conversation_id: str
    up_to_seq: int
    status: Literal["delivered", "read"]
    by_user_id: str
    at: Timestamp


def _erased(_text: object) -> None:
    """A deleted message's text, whatever is stored: none."""
    return None


class MessageEdited(ServerPush):
    """``message_edited``: to both participants' connections."""

    EVENT = MESSAGE_EDITED

    conversation_id: str
    message_id: str
    seq: int
    text: str
    edited_at: Timestamp


class MessageDeleted(ServerPush):
    """``message_deleted``: to both participants' connections."""

    EVENT = MESSAGE_DELETED

    conversation_id: str
    message_id: str
    seq: int
    text: Annotated[None, BeforeValidator(_erased)]
    deleted_at: Timestamp


class MessageEditAck(BaseModel):
    """The ``ack`` of ``edit_message``."""

    message_id: str
    edited_at: Timestamp


class MessageDeleteAck(BaseModel):
    """The ``ack`` of ``delete_message``."""

    message_id: str
    deleted_at: Timestamp


class TypingNotice(ServerPush):
    """``user_typing`` / ``user_stopped_typing``: to the other participant."""

    conversation_id: str
    user_id: str
    user_name: str


class TypingStarted(TypingNotice):
    """``user_typing``: to the other participant."""

    EVENT = USER_TYPING


class TypingStopped(TypingNotice):
    """``user_stopped_typing``: to the other participant (also when a typing times out)."""

    EVENT = USER_STOPPED_TYPING


class History(BaseModel):
    """The ``ack`` of ``get_history`` (and the body of ``GET /api/conversations/{id}/messages``)."""

    conversation_id: str
    messages: list[HistoryMessage]
    has_more: bool


class ConversationSummary(BaseModel):
    conversation_id: str
    peer_id: str
    last_message: HistoryMessage | None
    unread_count: int


class ConversationList(BaseModel):
    """The ``ack`` of ``list_conversations`` (and the body of ``GET /api/conversations``),
    most recently active first."""

    conversations: list[ConversationSummary]
