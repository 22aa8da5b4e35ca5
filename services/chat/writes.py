"""Chat's write operations and how a batch of them is applied in one transaction.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (shared.db), so replicas sharing
the file take turns and a batch plans its seqs from the latest state. Elsewhere the guarded
counter update and the UNIQUE constraints make a racing batch fail (and be retried one by one
by the group writer) instead of writing a duplicate or a gap.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.chat import domain
from services.chat.domain import (
    Conversation,
    Draft,
    Markers,
    Message,
    Receipt,
    Sent,
    StatusChange,
    Target,
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
    typing,
)
from services.chat.writer import Outcome, WriteOp
from shared.errors import RealtimeError


class StaleState(Exception):
    """Another writer changed a conversation under this batch (not on SQLite): retry."""


# -- write operations ------------------------------------------------------------------------


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
class Typing:
    conversation_id: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class TypingOp(WriteOp[Typing]):
    """``user_typing`` (``token`` set: remember it as the latest) or ``user_stopped_typing``."""

    target: Target
    user_id: str
    token: str | None


@dataclass(frozen=True, slots=True)
class ExpireTypingOp(WriteOp[bool]):
    """The typing timer fired: True when ``token`` was still the latest (typing ends now)."""

    conversation_id: str
    user_id: str
    token: str


def new_message_id() -> str:
    return uuid.uuid4().hex


async def apply(conn: AsyncConnection, ops: Sequence[WriteOp[Any]], at: float) -> list[Outcome]:
    """Apply ``ops`` in the transaction of ``conn``; one outcome (result or refusal) per op.
    Refusals are decided before an op writes anything, so they never leave half an op."""
    outcomes: list[Outcome] = [None] * len(ops)
    sends = [i for i, op in enumerate(ops) if isinstance(op, SendOp)]
    if sends:
        drafts = [op.draft for op in ops if isinstance(op, SendOp)]
        for i, outcome in zip(sends, await _send(conn, drafts, at), strict=True):
            outcomes[i] = outcome
    for i, op in enumerate(ops):
        if isinstance(op, SendOp):
            continue
        try:
            outcomes[i] = await _apply_one(conn, op, at)
        except RealtimeError as refused:
            outcomes[i] = refused
    return outcomes


async def _send(conn: AsyncConnection, drafts: list[Draft], at: float) -> list[domain.SendOutcome]:
    stored = await load_conversations(conn, {d.target.conversation_id for d in drafts})
    keys = {key for d in drafts for key in d.keys}
    earlier: dict[domain.Key, Message] = {}
    if keys:
        query = select(messages).where(
            messages.c.sender_id.in_({sender for _, sender, _ in keys}),
            or_(
                messages.c.client_msg_id.in_({k for kind, _, k in keys if kind == "client"}),
                messages.c.command_id.in_({k for kind, _, k in keys if kind == "command"}),
            ),
        )
        for r in (await conn.execute(query)).mappings().all():
            message = to_message(r)
            earlier.update({key: message for key in message.keys if key in keys})
    plan = domain.plan_sends(drafts, stored, earlier, at, new_message_id)
    if plan.new_conversations:
        await conn.execute(
            insert(conversations), [conversation_row(c) for c in plan.new_conversations]
        )
    if plan.advanced:
        guarded = (
            update(conversations)
            .where(conversations.c.id == bindparam("b_id"))
            .where(conversations.c.last_seq == bindparam("b_before"))
            .values(last_seq=bindparam("b_seq"), updated_at=bindparam("b_at"))
        )
        result = await conn.execute(
            guarded,
            [
                {"b_id": a.id, "b_before": b.last_seq, "b_seq": a.last_seq, "b_at": a.updated_at}
                for b, a in plan.advanced
            ],
        )
        if result.rowcount not in (-1, len(plan.advanced)):
            raise StaleState("a conversation moved under this batch")
    if plan.messages:
        await conn.execute(insert(messages), [message_row(m) for m in plan.messages])
    return plan.outcomes


async def _conversation_of(
    conn: AsyncConnection, user_id: str, conversation_id: str
) -> Conversation:
    stored = (await load_conversations(conn, {conversation_id})).get(conversation_id)
    return domain.visible_to(stored, user_id, conversation_id)


async def _apply_one(conn: AsyncConnection, op: WriteOp[Any], at: float) -> Outcome:
    if isinstance(op, ReceiptOp):
        conversation = await _conversation_of(conn, op.reader, op.conversation_id)
        key = and_(markers.c.conversation_id == conversation.id, markers.c.user_id == op.reader)
        row = (await conn.execute(select(markers).where(key))).mappings().first()
        before = to_markers(row) if row is not None else Markers()
        after, change = domain.mark(conversation, op.reader, before, op.kind, op.up_to_seq, at)
        if change is not None:
            values = {"delivered_seq": after.delivered_seq, "read_seq": after.read_seq}
            if row is None:
                await conn.execute(
                    insert(markers).values(
                        conversation_id=conversation.id, user_id=op.reader, **values
                    )
                )
            else:
                await conn.execute(update(markers).where(key).values(**values))
        return change
    if isinstance(op, TypingOp):
        if op.target.recipient_id is not None:
            conversation_id, peer_id = op.target.conversation_id, op.target.recipient_id
        else:
            conversation = await _conversation_of(conn, op.user_id, op.target.conversation_id)
            conversation_id, peer_id = conversation.id, conversation.peer_of(op.user_id)
        key = and_(typing.c.conversation_id == conversation_id, typing.c.user_id == op.user_id)
        if op.token is None:
            await conn.execute(delete(typing).where(key))
        elif (
            await conn.execute(update(typing).where(key).values(token=op.token, at=at))
        ).rowcount == 0:
            await conn.execute(
                insert(typing).values(
                    conversation_id=conversation_id, user_id=op.user_id, token=op.token, at=at
                )
            )
        return Typing(conversation_id, peer_id)
    if isinstance(op, ExpireTypingOp):
        gone = await conn.execute(
            delete(typing).where(
                typing.c.conversation_id == op.conversation_id,
                typing.c.user_id == op.user_id,
                typing.c.token == op.token,
            )
        )
        return gone.rowcount > 0
    raise TypeError(f"unknown write operation {op!r}")
