"""Chat's storage: its database, the reads, and the entry point of the batched writes."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Connection,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
)

from services.chat import writes
from services.chat.domain import Conversation, Markers, Message
from services.chat.tables import (
    conversations,
    load_conversations,
    markers,
    messages,
    metadata,
    to_conversation,
    to_markers,
    to_message,
)
from services.chat.writer import Outcome, WriteOp
from shared.clock import now
from shared.db import DEFAULT_POOL_SIZE, ThreadedDatabase
from shared.migrations import upgrade

_USERS: BindParameter[str] = bindparam("users", expanding=True)
_UNDELIVERED = (
    select(messages)
    .select_from(conversations)
    .join(
        messages,
        and_(messages.c.conversation_id == conversations.c.id, messages.c.recipient_id.in_(_USERS)),
    )
    .outerjoin(
        markers,
        and_(
            markers.c.conversation_id == conversations.c.id,
            markers.c.user_id == messages.c.recipient_id,
        ),
    )
    .where(
        or_(conversations.c.user_a.in_(_USERS), conversations.c.user_b.in_(_USERS)),
        messages.c.seq > func.coalesce(markers.c.delivered_seq, 0),
        messages.c.sent_at < bindparam("before"),
    )
    .order_by(messages.c.recipient_id, conversations.c.id, messages.c.seq)
)

# Conversations whose two participants are remembered (they never change), so that typing
# addressed by conversation id costs no read after the first.
PARTICIPANTS_CACHED = 100_000


class ChatStore:
    """Every read and every write batch runs whole in a database thread (ThreadedDatabase):
    one thread hop per unit of work, not several per statement; on a SQLite file a write batch
    runs on the event loop instead (``writes_on_loop``)."""

    def __init__(
        self,
        url: str,
        max_backlog: int | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = now,
        writes_on_loop: bool = True,
    ) -> None:
        self.db = ThreadedDatabase(url, pool_size, writes_on_loop)
        self.max_backlog = max_backlog  # see services.chat.domain.BacklogCap
        self.clock = clock
        self._participants: dict[str, Conversation] = {}

    async def start(self) -> None:
        """Bring the database to the latest migration."""
        await self.db.migrate(lambda conn: upgrade(conn, "chat", metadata))

    async def close(self) -> None:
        await self.db.close()

    # -- reads -----------------------------------------------------------------------------

    async def participants(self, conversation_id: str) -> Conversation | None:
        """The conversation, for who takes part in it only (its other fields may be stale)."""
        known = self._participants.get(conversation_id)
        if known is None:
            known = (await self.conversations([conversation_id])).get(conversation_id)
            if known is not None:
                if len(self._participants) >= PARTICIPANTS_CACHED:
                    self._participants.clear()
                self._participants[conversation_id] = known
        return known

    async def conversations(self, ids: Iterable[str]) -> dict[str, Conversation]:
        wanted = set(ids)
        return await self.db.read(lambda conn: load_conversations(conn, wanted))

    async def history(
        self, conversation_id: str, before_seq: int | None, limit: int
    ) -> tuple[list[Message], dict[str, Markers]]:
        """Up to ``limit + 1`` messages before ``before_seq``, newest first, and the markers."""
        query = select(messages).where(messages.c.conversation_id == conversation_id)
        if before_seq is not None:
            query = query.where(messages.c.seq < _client_seq(before_seq))
        query = query.order_by(messages.c.seq.desc()).limit(limit + 1)

        def read(conn: Connection) -> tuple[list[Message], dict[str, Markers]]:
            rows = conn.execute(query).mappings().all()
            found = _markers(conn, markers.c.conversation_id == conversation_id)
            return [to_message(r) for r in rows], found.get(conversation_id, {})

        return await self.db.read(read)

    async def overview(
        self, user_id: str
    ) -> list[tuple[Conversation, Message | None, dict[str, Markers], int]]:
        """The user's conversations, most recently active first: each with its last message,
        its markers and the user's unread count."""
        mine = or_(conversations.c.user_a == user_id, conversations.c.user_b == user_id)
        my_read = (
            select(markers.c.read_seq)
            .where(markers.c.conversation_id == conversations.c.id, markers.c.user_id == user_id)
            .correlate(conversations)
            .scalar_subquery()
        )
        unread = (
            select(func.count())
            .select_from(messages)
            .where(
                messages.c.conversation_id == conversations.c.id,
                messages.c.recipient_id == user_id,
                messages.c.seq > func.coalesce(my_read, 0),
            )
            .correlate(conversations)
            .scalar_subquery()
        )
        listing = (
            select(conversations, unread.label("unread"))
            .where(mine)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
        )
        lasts = (
            select(messages)
            .join(
                conversations,
                and_(
                    messages.c.conversation_id == conversations.c.id,
                    messages.c.seq == conversations.c.last_seq,
                ),
            )
            .where(mine)
        )

        def read(conn: Connection) -> list[tuple[Conversation, Message | None, Any, int]]:
            rows = conn.execute(listing).mappings().all()
            last = {r["conversation_id"]: to_message(r) for r in conn.execute(lasts).mappings()}
            found = _markers(
                conn, markers.c.conversation_id.in_(select(conversations.c.id).where(mine))
            )
            return [
                (to_conversation(r), last.get(r["id"]), found.get(r["id"], {}), int(r["unread"]))
                for r in rows
            ]

        return await self.db.read(read)

    async def undelivered(
        self, user_ids: Collection[str], sent_before: float
    ) -> dict[str, list[Message]]:
        """Every message to each of ``user_ids`` above their delivered marker and sent before
        ``sent_before``, by user, conversation and seq: one query for a whole batch."""
        if not user_ids:
            return {}

        def read(conn: Connection) -> dict[str, list[Message]]:
            found: dict[str, list[Message]] = {}
            params = {"users": list(user_ids), "before": sent_before}
            for row in conn.execute(_UNDELIVERED, params).mappings():
                found.setdefault(row["recipient_id"], []).append(to_message(row))
            return found

        return await self.db.read(read)

    async def after(self, since: dict[str, int]) -> list[Message]:
        """The messages of each conversation in ``since`` above its seq, by conversation, seq."""

        def read(conn: Connection) -> list[Message]:
            found: list[Message] = []
            for conversation_id, seq in sorted(since.items()):
                query = (
                    select(messages)
                    .where(
                        messages.c.conversation_id == conversation_id,
                        messages.c.seq > _client_seq(seq),
                    )
                    .order_by(messages.c.seq)
                )
                found += [to_message(r) for r in conn.execute(query).mappings().all()]
            return found

        return await self.db.read(read)

    # -- writes ----------------------------------------------------------------------------

    async def apply(self, ops: Sequence[WriteOp[Any]]) -> list[Outcome]:
        """Apply ``ops`` in one transaction (the group writer's batch); one outcome each."""
        # the clock is read inside the transaction: monotonic across replicas on one file
        # (on PostgreSQL, SERIALIZABLE: a batch refused for a concurrent one runs again whole)
        clock, cap = self.clock, self.max_backlog
        return await self.db.write(lambda conn: writes.apply(conn, ops, clock(), cap))


def _client_seq(seq: int) -> Any:
    """A seq from a client, bound as a 64-bit integer: the protocol allows up to 2^53, past
    the 32-bit seq column, and PostgreSQL refuses to compare with a parameter cast to it."""
    return literal(seq, BigInteger)


def _markers(conn: Connection, where: Any) -> dict[str, dict[str, Markers]]:
    found: dict[str, dict[str, Markers]] = {}
    for r in conn.execute(select(markers).where(where)).mappings().all():
        found.setdefault(r["conversation_id"], {})[r["user_id"]] = to_markers(r)
    return found
