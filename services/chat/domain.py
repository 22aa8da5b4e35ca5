"""The rules of chat, without I/O: conversation ids, who may see a conversation, how a batch of
messages gets its seqs (and which ones are repeats), how receipt markers move."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from shared.errors import Conflict, Forbidden, InvalidPayload, NotFound, RealtimeError

# The id rule lives in shared/: the gateway partitions chat's commands by conversation too.
from shared.partitions import conversation_id_for as conversation_id_for


class Receipt(StrEnum):
    """What a reader says about the messages they received, up to a seq."""

    DELIVERED = "delivered"
    READ = "read"


class Status(StrEnum):
    """Where a message is, seen by its sender. Only moves forward: sent → delivered → read."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"


# -- conversations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    user_a: str
    user_b: str
    last_seq: int = 0  # the counter seqs are taken from
    updated_at: float = 0.0

    @classmethod
    def between(cls, a: str, b: str, at: float) -> Conversation:
        low, high = sorted((a, b))
        return cls(conversation_id_for(a, b), low, high, 0, at)

    def has(self, user_id: str) -> bool:
        return user_id in (self.user_a, self.user_b)

    def peer_of(self, user_id: str) -> str:
        if user_id == self.user_a:
            return self.user_b
        if user_id == self.user_b:
            return self.user_a
        raise ValueError(f"{user_id} is not in conversation {self.id}")


def visible_to(
    conversation: Conversation | None, user_id: str, conversation_id: str
) -> Conversation:
    """The conversation if ``user_id`` takes part in it. Otherwise ``not_found`` — the same
    answer as for an id that does not exist, so ids reveal nothing to outsiders."""
    if conversation is None or not conversation.has(user_id):
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


@dataclass(frozen=True, slots=True)
class Target:
    """A conversation as a client names it: by the other participant, or by its id."""

    conversation_id: str
    recipient_id: str | None = None


def target(sender_id: str, recipient_id: str | None, conversation_id: str | None) -> Target:
    """Check what the client named (no storage needed): not yourself, and both names agree."""
    if recipient_id is not None:
        if recipient_id == sender_id:
            raise InvalidPayload("recipient_id: you cannot address yourself")
        derived = conversation_id_for(sender_id, recipient_id)
        if conversation_id is not None and conversation_id != derived:
            raise InvalidPayload("conversation_id is not the conversation with recipient_id")
        return Target(derived, recipient_id)
    if conversation_id is None:
        raise InvalidPayload("recipient_id or conversation_id is required")
    return Target(conversation_id)


def resolve(named: Target, stored: Conversation | None, sender_id: str, at: float) -> Conversation:
    """The conversation ``named`` means for ``sender_id``: addressed by recipient it may be new;
    addressed by id it must exist and include the sender."""
    if named.recipient_id is not None:
        return stored or Conversation.between(sender_id, named.recipient_id, at)
    return visible_to(stored, sender_id, named.conversation_id)


# -- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    recipient_id: str
    text: str
    sent_at: float
    client_msg_id: str | None = None
    call_id: str | None = None
    command_id: str | None = None  # the command that created it (never shown to clients)
    edited_at: float | None = None
    deleted_at: float | None = None  # a deleted message keeps its seq; its text is erased

    @property
    def message_id(self) -> str:
        """``id``, by the name clients know it by."""
        return self.id

    @property
    def keys(self) -> list[Key]:
        return _keys(self.sender_id, self.client_msg_id, self.command_id)


# An idempotency key: ("client", sender, client_msg_id) — the client's own, kept across its
# resends — or ("command", sender, command_id) — the broker's, kept across redeliveries of one
# command (which covers messages sent without a client_msg_id).
Key = tuple[str, str, str]


def _keys(sender_id: str, client_msg_id: str | None, command_id: str | None) -> list[Key]:
    keys = [("client", sender_id, client_msg_id)] if client_msg_id is not None else []
    return keys + ([("command", sender_id, command_id)] if command_id is not None else [])


@dataclass(frozen=True, slots=True)
class Draft:
    """A message as sent, before it has an id and a seq."""

    sender_id: str
    sender_name: str
    target: Target
    text: str
    client_msg_id: str | None = None
    call_id: str | None = None
    command_id: str | None = None

    @property
    def keys(self) -> list[Key]:
        return _keys(self.sender_id, self.client_msg_id, self.command_id)


@dataclass(frozen=True, slots=True)
class Sent:
    message: Message
    created: bool  # False: a repeat; ``message`` is the first one with the same key


SendOutcome = Sent | RealtimeError


@dataclass
class SendPlan:
    """What a batch of drafts does: one outcome per draft (in order) and the rows to write."""

    outcomes: list[SendOutcome] = field(default_factory=list)
    new_conversations: list[Conversation] = field(default_factory=list)
    advanced: list[tuple[Conversation, Conversation]] = field(default_factory=list)  # before, after
    messages: list[Message] = field(default_factory=list)


@dataclass(frozen=True)
class BacklogCap:
    """A conversation may run at most ``limit`` messages ahead of what its recipient has
    had delivered (``delivered``: (conversation id, user) → their delivered seq). Bounds what
    a sender can pile up for someone who never connects, such as a user id never seen."""

    limit: int
    delivered: Mapping[tuple[str, str], int]

    def refusal(self, conversation: Conversation, recipient: str) -> RealtimeError | None:
        behind = conversation.last_seq - self.delivered.get((conversation.id, recipient), 0)
        if behind < self.limit:
            return None
        return Conflict(
            f"{behind} messages of this conversation have not reached {recipient} yet; "
            "send more once they have"
        )


def plan_sends(
    drafts: Sequence[Draft],
    conversations: Mapping[str, Conversation],
    earlier: Mapping[Key, Message],
    at: float,
    new_id: Callable[[], str],
    backlog: BacklogCap | None = None,
) -> SendPlan:
    """Number a batch of drafts, in order. ``conversations`` and ``earlier`` (the stored messages
    with any idempotency key of the batch) are the state the batch starts from; each
    conversation's messages get ``last_seq + 1, + 2, …`` in the order of ``drafts``. A draft
    with a key seen before (stored, or earlier in the batch) gets that first message back;
    a new one past the ``backlog`` cap is refused."""
    plan = SendPlan()
    current = dict(conversations)
    known = dict(earlier)
    for draft in drafts:
        first = next((known[k] for k in draft.keys if k in known), None)
        if first is not None:
            plan.outcomes.append(Sent(first, created=False))
            continue
        try:
            conversation = resolve(
                draft.target, current.get(draft.target.conversation_id), draft.sender_id, at
            )
        except RealtimeError as refused:
            plan.outcomes.append(refused)
            continue
        if backlog is not None:
            too_far = backlog.refusal(conversation, conversation.peer_of(draft.sender_id))
            if too_far is not None:
                plan.outcomes.append(too_far)
                continue
        current[conversation.id] = replace(
            conversation, last_seq=conversation.last_seq + 1, updated_at=at
        )
        message = Message(
            id=new_id(),
            conversation_id=conversation.id,
            seq=conversation.last_seq + 1,
            sender_id=draft.sender_id,
            sender_name=draft.sender_name,
            recipient_id=conversation.peer_of(draft.sender_id),
            text=draft.text,
            sent_at=at,
            client_msg_id=draft.client_msg_id,
            call_id=draft.call_id,
            command_id=draft.command_id,
        )
        plan.messages.append(message)
        known.update(dict.fromkeys(message.keys, message))
        plan.outcomes.append(Sent(message, created=True))
    for conversation_id, after in current.items():
        before = conversations.get(conversation_id)
        if before is None:
            plan.new_conversations.append(after)
        elif before != after:
            plan.advanced.append((before, after))
    return plan


# -- edits and deletes -----------------------------------------------------------------------


def _own_message(
    conversation: Conversation | None,
    message: Message | None,
    user_id: str,
    conversation_id: str,
    message_id: str,
) -> Message:
    """The message, if ``user_id`` sent it in that conversation. Someone outside the
    conversation learns nothing (``not_found``); its other participant is ``forbidden``."""
    visible_to(conversation, user_id, conversation_id)
    if message is None or message.conversation_id != conversation_id:
        raise NotFound(f"message {message_id} not found in conversation {conversation_id}")
    if message.sender_id != user_id:
        raise Forbidden("only the sender of a message may change it")
    return message


def edit(
    conversation: Conversation | None,
    message: Message | None,
    editor: str,
    ids: tuple[str, str],
    text: str,
    at: float,
    window_s: float,
) -> Message:
    """The message with its new text (``ids``: conversation id, message id as the client named
    them). Refused once deleted, or once ``window_s`` has passed since it was sent."""
    found = _own_message(conversation, message, editor, *ids)
    if found.deleted_at is not None:
        raise Conflict(f"message {found.id} was deleted")
    if at - found.sent_at > window_s:
        raise Conflict(
            f"message {found.id} can no longer be edited ({window_s:.0f} s after sending)"
        )
    return replace(found, text=text, edited_at=at)


def delete(
    conversation: Conversation | None,
    message: Message | None,
    deleter: str,
    ids: tuple[str, str],
    at: float,
) -> Message:
    """The message deleted: its text erased, its seq kept. Deleting it again changes nothing
    (the first ``deleted_at`` stays), so a repeated command gets the same answer."""
    found = _own_message(conversation, message, deleter, *ids)
    if found.deleted_at is not None:
        return found
    return replace(found, text="", deleted_at=at)


def catch_up(undelivered: Sequence[Message], limit: int) -> list[Message]:
    """What a connection is pushed on connect (PROTOCOL §1): the newest ``limit`` of the
    messages waiting for it, in conversation and seq order; the client fetches any older ones
    with ``sync`` (it sees the gap in seq)."""
    newest = sorted(undelivered, key=lambda m: (m.sent_at, m.seq), reverse=True)[:limit]
    return sorted(newest, key=lambda m: (m.conversation_id, m.seq))


def page(newest_first: Sequence[Message], limit: int) -> tuple[list[Message], bool]:
    """A history page from up to ``limit + 1`` rows, newest first: ascending, and whether
    older messages remain."""
    return list(reversed(newest_first[:limit])), len(newest_first) > limit


# -- receipts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Markers:
    """One reader's up-to markers in one conversation (messages they received)."""

    delivered_seq: int = 0
    read_seq: int = 0

    def status_of(self, seq: int) -> Status:
        if seq <= self.read_seq:
            return Status.READ
        if seq <= self.delivered_seq:
            return Status.DELIVERED
        return Status.SENT

    def advance(self, kind: Receipt, up_to_seq: int) -> Markers:
        """Markers only move forward; read implies delivered."""
        if kind is Receipt.READ:
            read = max(self.read_seq, up_to_seq)
            return Markers(max(self.delivered_seq, read), read)
        return Markers(max(self.delivered_seq, up_to_seq), self.read_seq)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """``message_status`` for ``to_user_id``, the sender of the messages concerned."""

    conversation_id: str
    up_to_seq: int
    status: Receipt
    by_user_id: str
    to_user_id: str
    at: float


def mark(
    conversation: Conversation,
    reader: str,
    before: Markers,
    kind: Receipt,
    up_to_seq: int,
    at: float,
) -> tuple[Markers, StatusChange | None]:
    """A reader's receipt: the new markers, and the status change to tell the other
    participant (None when nothing moved: receipts are idempotent and never go back)."""
    if up_to_seq > conversation.last_seq:
        raise InvalidPayload(
            f"up_to_seq {up_to_seq} is beyond the last message ({conversation.last_seq})"
        )
    after = before.advance(kind, up_to_seq)
    if after == before:
        return before, None
    if after.read_seq > before.read_seq:
        status, up_to = Receipt.READ, after.read_seq
    else:
        status, up_to = Receipt.DELIVERED, after.delivered_seq
    change = StatusChange(conversation.id, up_to, status, reader, conversation.peer_of(reader), at)
    return after, change


def status_of(message: Message, markers: Mapping[str, Markers]) -> Status:
    """A message's status from its recipient's markers."""
    return markers.get(message.recipient_id, Markers()).status_of(message.seq)
