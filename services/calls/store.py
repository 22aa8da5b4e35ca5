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

from sqlalchemy import JSON, Float, Index, String, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.calls.domain import Call, CallState
from shared.db import DEFAULT_POOL_SIZE, create_engine, reader
from shared.dbtypes import ClientString
from shared.migrations import upgrade_engine


class Base(DeclarativeBase):
    pass


class CallRow(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(ClientString(64), primary_key=True)
    caller_id: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(ClientString(80))
    caller_role: Mapped[str] = mapped_column(String(16))
    receiver_id: Mapped[str] = mapped_column(String(64))
    receiver_name: Mapped[str | None] = mapped_column(ClientString(80))
    call_type: Mapped[str] = mapped_column(String(16))
    call_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    accepted_by: Mapped[str | None] = mapped_column(String(64))
    accepted_at: Mapped[float | None] = mapped_column(Float)
    accept_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rejected_by: Mapped[str | None] = mapped_column(String(64))
    ended_by: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(ClientString(200))
    origin_connection: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_calls_caller", "caller_id", "created_at"),
        Index("ix_calls_receiver", "receiver_id", "created_at"),
    )


class LineRow(Base):
    __tablename__ = "call_lines"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(ClientString(64), index=True)


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


def _row_values(call: Call) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "caller_id": call.caller_id,
        "caller_name": call.caller_name,
        "caller_role": call.caller_role,
        "receiver_id": call.receiver_id,
        "receiver_name": call.receiver_name,
        "call_type": call.call_type,
        "call_data": call.call_data,
        "state": call.state.value,
        "created_at": call.created_at,
        "expires_at": call.expires_at,
        "accepted_by": call.accepted_by,
        "accepted_at": call.accepted_at,
        "accept_data": call.accept_data,
        "rejected_by": call.rejected_by,
        "ended_by": call.ended_by,
        "ended_at": call.ended_at,
        "reason": call.reason,
        "origin_connection": call.origin_connection,
    }


def _to_call(row: Any) -> Call:
    return Call(
        call_id=row.id,
        caller_id=row.caller_id,
        caller_name=row.caller_name,
        caller_role=row.caller_role,
        receiver_id=row.receiver_id,
        receiver_name=row.receiver_name,
        call_type=row.call_type,
        call_data=row.call_data,
        state=CallState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_by=row.accepted_by,
        accepted_at=row.accepted_at,
        accept_data=row.accept_data,
        rejected_by=row.rejected_by,
        ended_by=row.ended_by,
        ended_at=row.ended_at,
        reason=row.reason,
        origin_connection=row.origin_connection,
    )


_CALLS = CallRow.__table__


class CallStore:
    """The repository of calls. Reads run outside transactions; each write is one
    short transaction."""

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size)
        self.reads: AsyncEngine = reader(self.engine)

    async def start(self) -> None:
        await upgrade_engine(self.engine, "calls", Base.metadata)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- reads -----------------------------------------------------------------------------

    async def get(self, call_id: str) -> Call | None:
        async with self.reads.connect() as conn:
            row = (await conn.execute(select(_CALLS).where(_CALLS.c.id == call_id))).first()
        return _to_call(row) if row is not None else None

    async def active_calls_of(self, user_id: str) -> list[Call]:
        """The calls (ringing or accepted) that hold ``user_id``'s line: at most one."""
        return (await self.active_calls_of_users([user_id])).get(user_id, [])

    async def active_calls_of_users(self, user_ids: Collection[str]) -> dict[str, list[Call]]:
        """:meth:`active_calls_of` for many users in one query (a batch of connections)."""
        if not user_ids:
            return {}
        query = (
            select(LineRow.user_id, _CALLS)
            .join(LineRow.__table__, LineRow.call_id == _CALLS.c.id)
            .where(LineRow.user_id.in_(list(user_ids)))
        )
        async with self.reads.connect() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[str, list[Call]] = {}
        for row in rows:
            if CallState(row.state).active:
                found.setdefault(row.user_id, []).append(_to_call(row))
        return found

    async def placed_from(
        self, caller_id: str, receiver_id: str, connection_id: str, since: float
    ) -> Call | None:
        """The newest call ``caller_id`` placed to ``receiver_id`` from ``connection_id``
        since ``since`` (to recognise a redelivered ``initiate_call``)."""
        query = (
            select(_CALLS)
            .where(
                _CALLS.c.caller_id == caller_id,
                _CALLS.c.receiver_id == receiver_id,
                _CALLS.c.origin_connection == connection_id,
                _CALLS.c.created_at >= since,
            )
            .order_by(_CALLS.c.created_at.desc())
            .limit(1)
        )
        async with self.reads.connect() as conn:
            row = (await conn.execute(query)).first()
        return _to_call(row) if row is not None else None

    async def history(self, user_id: str, limit: int, before: float | None = None) -> list[Call]:
        """``user_id``'s calls, newest first."""
        query = select(_CALLS).where(
            or_(_CALLS.c.caller_id == user_id, _CALLS.c.receiver_id == user_id)
        )
        if before is not None:
            query = query.where(_CALLS.c.created_at < before)
        query = query.order_by(_CALLS.c.created_at.desc()).limit(limit)
        async with self.reads.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_to_call(row) for row in rows]

    # -- writes ----------------------------------------------------------------------------

    async def place(self, call: Call) -> bool:
        """Store a new ringing call and take both parties' lines, atomically. False (and
        nothing stored) when either party's line is taken: somebody is busy."""
        assert call.state is CallState.RINGING
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(CallRow).values(**_row_values(call)))
                # in user order: two placements taking the same two lines (alice→bob and
                # bob→alice) then queue on the first, where PostgreSQL's row locks could
                # otherwise deadlock
                await conn.execute(
                    insert(LineRow),
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
            await conn.execute(insert(CallRow).values(**_row_values(call)))

    async def discard(self, call: Call) -> None:
        """Forget a call that never rang (it could not be announced), freeing both lines."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(CallRow).where(
                    CallRow.id == call.call_id, CallRow.state == CallState.RINGING.value
                )
            )
            if result.rowcount == 1:
                await conn.execute(delete(LineRow).where(LineRow.call_id == call.call_id))

    async def transition(self, old: Call, new: Call) -> bool:
        """Write ``new`` if the call is still in ``old``'s state; False if somebody else
        moved it first (then nothing is written). A final state frees both lines."""
        values = _row_values(new)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(CallRow)
                .where(CallRow.id == old.call_id, CallRow.state == old.state.value)
                .values({name: values[name] for name in _MUTABLE})
            )
            if result.rowcount != 1:
                return False
            if not new.state.active:
                await conn.execute(delete(LineRow).where(LineRow.call_id == new.call_id))
        return True
