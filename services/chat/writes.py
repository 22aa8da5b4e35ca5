"""Chat's write operations and how a batch of them is applied in one transaction.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (shared.db), so replicas sharing
the file take turns and a batch plans its seqs from the latest state. On PostgreSQL a batch runs
at SERIALIZABLE (shared.db): a batch that raced another replica's is refused by PostgreSQL and
run again whole, from the state the other committed. Whatever the engine, the guarded counter
update and the UNIQUE constraints make a racing batch fail (and be retried one by one by the
group writer) instead of writing a duplicate or a gap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, union_all, update

from services.chat import domain
from services.chat.domain import (
    Conversation,
    Draft,
    Markers,
    Message,
    Receipt,
    Sent,
    StatusChange,
)
from services.chat.tables import (
    conversation_row,
    conversations,
    load_conversations,
    markers,
    message_row,
    messages,
    to_markers,
    to_message,
)
from services.chat.writer import Outcome, WriteOp
from shared.errors import RealtimeError


class StaleState(Exception):
    """Another writer changed a conversation under this batch (not on SQLite): retry."""


# -- write operations ------------------------------------------------------------------------

MessageChange = Callable[[Conversation | None, Message | None, float], Message]


@dataclass(frozen=True, slots=True)
class SendOp(WriteOp[Sent]):
    draft: Draft


@dataclass(frozen=True, slots=True)
class ReceiptOp(WriteOp[StatusChange | None]):
    conversation_id: str
    reader: str
    kind: Receipt
    up_to_seq: int


@dataclass(frozen=True, slots=True)
class ChangeOp(WriteOp[Message]):
    """A change to one stored message, decided by a rule of ``domain`` (an edit, a delete):
    ``change`` gets the conversation and the message as stored (None when missing) and the
    time, and returns the message as it is to be (or raises to refuse). Loaded, decided and
    stored in the writer's transaction, so a send and a following change are stored in that
    order. The result is the message afterwards."""

    conversation_id: str
    message_id: str
    change: MessageChange


# Built once: SQLAlchemy keys its compiled-statement cache by the statement object's structure,
# and building and keying a statement per call cost more than executing it on SQLite.
# A sender's earlier message with one of the batch's keys. Two indexed lookups, not one
# query with OR: with OR, SQLite searched by sender alone and read every message the sender
# ever sent (160 ms per batch at 50,000 stored); this reads only the matching rows.
_EARLIER = union_all(
    select(messages).where(
        messages.c.sender_id.in_(bindparam("senders", expanding=True)),
        messages.c.client_msg_id.in_(bindparam("client_ids", expanding=True)),
    ),
    select(messages).where(
        messages.c.sender_id.in_(bindparam("senders", expanding=True)),
        messages.c.command_id.in_(bindparam("command_ids", expanding=True)),
    ),
)
_ADVANCE = (
    update(conversations)
    .where(conversations.c.id == bindparam("b_id"))
    .where(conversations.c.last_seq == bindparam("b_before"))
    .values(last_seq=bindparam("b_seq"), updated_at=bindparam("b_at"))
)
_NEW_CONVERSATIONS = insert(conversations)
_NEW_MESSAGES = insert(messages)
_MESSAGE = select(messages).where(messages.c.id == bindparam("id"))
_DELIVERED = select(markers.c.conversation_id, markers.c.user_id, markers.c.delivered_seq).where(
    markers.c.conversation_id.in_(bindparam("ids", expanding=True))
)
_MARKERS_OF = select(markers).where(
    markers.c.conversation_id == bindparam("m_conversation"),
    markers.c.user_id == bindparam("m_user"),
)
_NEW_MARKERS = insert(markers)
_SET_MARKERS = (
    update(markers)
    .where(markers.c.conversation_id == bindparam("m_conversation"))
    .where(markers.c.user_id == bindparam("m_user"))
    .values(delivered_seq=bindparam("m_delivered"), read_seq=bindparam("m_read"))
)


def new_message_id() -> str:
    return uuid.uuid4().hex


def apply(
    conn: Connection, ops: Sequence[WriteOp[Any]], at: float, max_backlog: int | None = None
) -> list[Outcome]:
    """Apply ``ops`` in the transaction of ``conn``; one outcome (result or refusal) per op.
    Refusals are decided before an op writes anything, so they never leave half an op.
    ``max_backlog``: see :class:`services.chat.domain.BacklogCap`."""
    outcomes: list[Outcome] = [None] * len(ops)
    sends = [i for i, op in enumerate(ops) if isinstance(op, SendOp)]
    if sends:
        drafts = [op.draft for op in ops if isinstance(op, SendOp)]
        for i, outcome in zip(sends, _send(conn, drafts, at, max_backlog), strict=True):
            outcomes[i] = outcome
    for i, op in enumerate(ops):
        if isinstance(op, SendOp):
            continue
        try:
            outcomes[i] = _apply_one(conn, op, at)
        except RealtimeError as refused:
            outcomes[i] = refused
    return outcomes


def _send(
    conn: Connection, drafts: list[Draft], at: float, max_backlog: int | None
) -> list[domain.SendOutcome]:
    stored = load_conversations(conn, {d.target.conversation_id for d in drafts})
    backlog = None
    if max_backlog is not None:  # what each stored conversation's participants have had
        delivered: dict[tuple[str, str], int] = {}
        if stored:
            for conversation, user, seq in conn.execute(_DELIVERED, {"ids": sorted(stored)}):
                delivered[(conversation, user)] = seq
        backlog = domain.BacklogCap(max_backlog, delivered)
    keys = {key for d in drafts for key in d.keys}
    earlier: dict[domain.Key, Message] = {}
    if keys:
        found = conn.execute(
            _EARLIER,
            {
                "senders": sorted({sender for _, sender, _ in keys}),
                "client_ids": sorted({k for kind, _, k in keys if kind == "client"}),
                "command_ids": sorted({k for kind, _, k in keys if kind == "command"}),
            },
        )
        for r in found.mappings().all():
            message = to_message(r)
            earlier.update({key: message for key in message.keys if key in keys})
    plan = domain.plan_sends(drafts, stored, earlier, at, new_message_id, backlog)
    if plan.new_conversations:
        conn.execute(_NEW_CONVERSATIONS, [conversation_row(c) for c in plan.new_conversations])
    if plan.advanced:
        result = conn.execute(
            _ADVANCE,
            [
                {"b_id": a.id, "b_before": b.last_seq, "b_seq": a.last_seq, "b_at": a.updated_at}
                for b, a in plan.advanced
            ],
        )
        if result.rowcount not in (-1, len(plan.advanced)):
            raise StaleState("a conversation moved under this batch")
    if plan.messages:
        conn.execute(_NEW_MESSAGES, [message_row(m) for m in plan.messages])
    return plan.outcomes


def _conversation_of(conn: Connection, user_id: str, conversation_id: str) -> Conversation:
    stored = (load_conversations(conn, {conversation_id})).get(conversation_id)
    return domain.visible_to(stored, user_id, conversation_id)


def _apply_one(conn: Connection, op: WriteOp[Any], at: float) -> Outcome:
    if isinstance(op, ReceiptOp):
        conversation = _conversation_of(conn, op.reader, op.conversation_id)
        key = {"m_conversation": conversation.id, "m_user": op.reader}
        row = conn.execute(_MARKERS_OF, key).mappings().first()
        before = to_markers(row) if row is not None else Markers()
        after, change = domain.mark(conversation, op.reader, before, op.kind, op.up_to_seq, at)
        if change is not None:
            if row is None:
                conn.execute(
                    _NEW_MARKERS,
                    {
                        "conversation_id": conversation.id,
                        "user_id": op.reader,
                        "delivered_seq": after.delivered_seq,
                        "read_seq": after.read_seq,
                    },
                )
            else:
                seqs = {"m_delivered": after.delivered_seq, "m_read": after.read_seq}
                conn.execute(_SET_MARKERS, key | seqs)
        return change
    if isinstance(op, ChangeOp):
        return _change(conn, op, at)
    raise TypeError(f"unknown write operation {op!r}")


def _change(conn: Connection, op: ChangeOp, at: float) -> Message:
    conversation = load_conversations(conn, {op.conversation_id}).get(op.conversation_id)
    row = conn.execute(_MESSAGE, {"id": op.message_id}).mappings().first()
    before = to_message(row) if row is not None else None
    after = op.change(conversation, before, at)
    if before is None or after.id != before.id:
        raise TypeError(f"a change must keep its message: {op!r}")
    was, now = message_row(before), message_row(after)
    changed = {name: value for name, value in now.items() if value != was[name]}
    if changed:
        conn.execute(update(messages).where(messages.c.id == after.id).values(**changed))
    return after
