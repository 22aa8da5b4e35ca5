"""The calls database: every call, and the "lines" that make a party busy.

Two tables:

* ``calls`` — one row per call, its state and timestamps (the history, too);
* ``call_lines`` — one row per user who is in a ringing or accepted call (primary key: the
  user). Placing a call inserts both parties' lines in the same transaction as the call, so
  the unique key, not a read-then-write check, decides "busy" — also between replicas.

Every transition is a conditional ``UPDATE … WHERE id = ? AND state = <state it was read in>``:
whoever writes first wins, the other sees ``rowcount == 0`` and re-reads. That makes accept vs.
timeout, accept vs. cancel and two devices accepting come out once for everyone, with any
number of replicas on one database.

Transactions start with their first write (SQLite: pysqlite opens them lazily before DML), so
a writer waits on the lock with ``busy_timeout`` instead of failing on a stale snapshot. On
PostgreSQL (READ COMMITTED) the same statements decide the same races by row locks: a second
conditional ``UPDATE`` waits for the first to commit and then finds the state changed, and a
second insert of a taken line waits and then violates its key.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    MetaData,
    Select,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.calls.domain import Call, CallState
from shared.db import DEFAULT_POOL_SIZE, create_engine, reader
from shared.dbtypes import ClientString
from shared.migrations import upgrade_engine
from shared.rows import RowMapper
from shared.schema import ID

metadata = MetaData()

# Rows and calls share their field names but the key (``id``), so the mapping is derived; so
# are the columns of times and JSON: only the columns that need more are declared.
_ROWS = RowMapper(Call, columns={"call_id": "id"})

calls = _ROWS.table(
    "calls",
    metadata,
    Column("id", ClientString(ID), primary_key=True),
    Column("caller_id", String(ID), nullable=False),
    Column("caller_name", ClientString(80), nullable=False),
    Column("caller_role", String(16), nullable=False),
    Column("receiver_id", String(ID), nullable=False),
    Column("receiver_name", ClientString(80), nullable=True),
    Column("call_type", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("accepted_by", String(ID), nullable=True),
    Column("rejected_by", String(ID), nullable=True),
    Column("ended_by", String(ID), nullable=True),
    Column("reason", ClientString(200), nullable=True),
    Column("origin_connection", String(ID), nullable=True),
    Index("ix_calls_caller", "caller_id", "created_at"),
    Index("ix_calls_receiver", "receiver_id", "created_at"),
)

call_lines = Table(
    "call_lines",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("call_id", ClientString(ID), nullable=False, index=True),
)

# What a transition may change (everything but the call's identity and its parties).
_MUTABLE = (
    "state",
    "receiver_name",
    "accepted_by",
    "accepted_at",
    "accept_data",
    "rejected_by",
    "ended_by",
    "ended_at",
    "reason",
)


class CallStore:
    """The repository of calls. Reads run outside transactions; each write is one
    short transaction."""

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size)
        self.reads: AsyncEngine = reader(self.engine)

    async def start(self) -> None:
        await upgrade_engine(self.engine, "calls", metadata)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- reads -----------------------------------------------------------------------------

    async def get(self, call_id: str) -> Call | None:
        return await self._first(select(calls).where(calls.c.id == call_id))

    async def active_calls_of(self, user_id: str) -> list[Call]:
        """The calls (ringing or accepted) that hold ``user_id``'s line: at most one."""
        return (await self.active_calls_of_users([user_id])).get(user_id, [])

    async def active_calls_of_users(self, user_ids: Collection[str]) -> dict[str, list[Call]]:
        """:meth:`active_calls_of` for many users in one query (a batch of connections)."""
        if not user_ids:
            return {}
        query = (
            select(call_lines.c.user_id, calls)
            .join(call_lines, call_lines.c.call_id == calls.c.id)
            .where(call_lines.c.user_id.in_(list(user_ids)))
        )
        async with self.reads.connect() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[str, list[Call]] = {}
        for row in rows:
            if CallState(row.state).active:
                found.setdefault(row.user_id, []).append(_ROWS.to_object(row))
        return found

    async def placed_from(
        self, caller_id: str, receiver_id: str, connection_id: str, since: float
    ) -> Call | None:
        """The newest call ``caller_id`` placed to ``receiver_id`` from ``connection_id``
        since ``since`` (to recognise a redelivered ``initiate_call``)."""
        query = (
            select(calls)
            .where(
                calls.c.caller_id == caller_id,
                calls.c.receiver_id == receiver_id,
                calls.c.origin_connection == connection_id,
                calls.c.created_at >= since,
            )
            .order_by(calls.c.created_at.desc())
            .limit(1)
        )
        return await self._first(query)

    async def history(self, user_id: str, limit: int, before: float | None = None) -> list[Call]:
        """``user_id``'s calls, newest first."""
        query = select(calls).where(
            or_(calls.c.caller_id == user_id, calls.c.receiver_id == user_id)
        )
        if before is not None:
            query = query.where(calls.c.created_at < before)
        query = query.order_by(calls.c.created_at.desc()).limit(limit)
        async with self.reads.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_ROWS.to_object(row) for row in rows]

    async def _first(self, query: Select[Any]) -> Call | None:
        """The call of the first row ``query`` reads (None when there is none)."""
        async with self.reads.connect() as conn:
            row = (await conn.execute(query)).first()
        return _ROWS.to_object(row) if row is not None else None

    # -- writes ----------------------------------------------------------------------------

    async def place(self, call: Call) -> bool:
        """Store a new ringing call and take both parties' lines, atomically. False (and
        nothing stored) when either party's line is taken: somebody is busy."""
        assert call.state is CallState.RINGING
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(calls).values(_ROWS.to_row(call)))
                # in user order: two placements taking the same two lines (alice→bob and
                # bob→alice) then queue on the first, where PostgreSQL's row locks could
                # otherwise deadlock
                await conn.execute(
                    insert(call_lines),
                    [
                        {"user_id": user_id, "call_id": call.call_id}
                        for user_id in sorted((call.caller_id, call.receiver_id))
                    ],
                )
        except IntegrityError:
            return False
        return True

    async def record(self, call: Call) -> None:
        """Store a call that never rang (rejected at once), for the history."""
        assert not call.state.active
        async with self.engine.begin() as conn:
            await conn.execute(insert(calls).values(_ROWS.to_row(call)))

    async def discard(self, call: Call) -> None:
        """Forget a call that never rang (it could not be announced), freeing both lines."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(calls).where(
                    calls.c.id == call.call_id, calls.c.state == CallState.RINGING.value
                )
            )
            if result.rowcount == 1:
                await conn.execute(delete(call_lines).where(call_lines.c.call_id == call.call_id))

    async def transition(self, old: Call, new: Call) -> bool:
        """Write ``new`` if the call is still in ``old``'s state; False if somebody else
        moved it first (then nothing is written). A final state frees both lines."""
        values = _ROWS.to_row(new)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(calls)
                .where(calls.c.id == old.call_id, calls.c.state == old.state.value)
                .values({name: values[name] for name in _MUTABLE})
            )
            if result.rowcount != 1:
                return False
            if not new.state.active:
                await conn.execute(delete(call_lines).where(call_lines.c.call_id == new.call_id))
        return True
