"""Presence's own database: connections, users, mentors and gateways."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.presence.domain import Mentor, Status, UserPresence
from shared.db import create_engine, create_tables, reader, sessions


class Base(DeclarativeBase):
    pass


class ConnectionRow(Base):
    __tablename__ = "connections"
    connection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    opened_at: Mapped[float] = mapped_column(Float)


class UserRow(Base):
    __tablename__ = "users"
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class MentorRow(Base):
    __tablename__ = "mentors"
    mentor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    chosen: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(String(140), nullable=True)
    status_data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    session_calls: Mapped[str] = mapped_column(String, default="[]")
    ended_calls: Mapped[str] = mapped_column(String, default="[]")
    updated_at: Mapped[float] = mapped_column(Float)


class GatewayRow(Base):
    __tablename__ = "gateways"
    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen: Mapped[float] = mapped_column(Float)


def _mentor(row: MentorRow) -> Mentor:
    return Mentor(
        mentor_id=row.mentor_id,
        name=row.name,
        chosen=Status(row.chosen),
        status_message=row.status_message,
        status_data=row.status_data,
        online=row.online,
        session_calls=frozenset(json.loads(row.session_calls)),
        ended_calls=tuple(json.loads(row.ended_calls)),
        updated_at=row.updated_at,
    )


class PresenceTx:
    """The reads and writes of one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # connections
    async def add_connection(
        self, connection_id: str, user_id: str, gateway_id: str, at: float
    ) -> bool:
        """Record a connection; False if it was known already."""
        if await self.session.get(ConnectionRow, connection_id) is not None:
            return False
        self.session.add(
            ConnectionRow(
                connection_id=connection_id, user_id=user_id, gateway_id=gateway_id, opened_at=at
            )
        )
        await self.session.flush()
        return True

    async def remove_connection(self, connection_id: str) -> str | None:
        """Forget a connection; its user id, or None if it was not known."""
        row = await self.session.get(ConnectionRow, connection_id)
        if row is None:
            return None
        await self.session.delete(row)
        await self.session.flush()
        return row.user_id

    async def connection_count(self, user_id: str) -> int:
        query = (
            select(func.count()).select_from(ConnectionRow).where(ConnectionRow.user_id == user_id)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def stale_connections(self, gateway_id: str, live: set[str], before: float) -> list[str]:
        """Connections of ``gateway_id`` opened before ``before`` that it no longer holds."""
        query = select(ConnectionRow.connection_id).where(
            ConnectionRow.gateway_id == gateway_id, ConnectionRow.opened_at < before
        )
        known = (await self.session.execute(query)).scalars().all()
        return [c for c in known if c not in live]

    async def connections_of_gateway(self, gateway_id: str) -> list[str]:
        query = select(ConnectionRow.connection_id).where(ConnectionRow.gateway_id == gateway_id)
        return list((await self.session.execute(query)).scalars().all())

    # gateways
    async def gateway_seen(self, gateway_id: str, now: float) -> None:
        row = await self.session.get(GatewayRow, gateway_id)
        if row is None:
            self.session.add(GatewayRow(gateway_id=gateway_id, last_seen=now))
        else:
            row.last_seen = now
        await self.session.flush()

    async def silent_gateways(self, since: float) -> list[str]:
        query = select(GatewayRow.gateway_id).where(GatewayRow.last_seen < since)
        return list((await self.session.execute(query)).scalars().all())

    async def claim_dead_gateway(self, gateway_id: str, since: float) -> bool:
        """Delete the gateway if still silent; True for exactly one claimant."""
        result = await self.session.execute(
            delete(GatewayRow).where(
                GatewayRow.gateway_id == gateway_id, GatewayRow.last_seen < since
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # users
    async def user(self, user_id: str, role: str) -> UserPresence:
        row = await self.session.get(UserRow, user_id)
        if row is None:
            return UserPresence(user_id=user_id, role=role)
        return UserPresence(row.user_id, row.role, row.online, row.generation)

    async def save_user(self, user: UserPresence) -> None:
        row = await self.session.get(UserRow, user.user_id)
        if row is None:
            self.session.add(
                UserRow(
                    user_id=user.user_id,
                    role=user.role,
                    online=user.online,
                    generation=user.generation,
                )
            )
        else:
            row.online, row.generation = user.online, user.generation
        await self.session.flush()

    # mentors
    async def mentor(self, mentor_id: str) -> Mentor | None:
        row = await self.session.get(MentorRow, mentor_id)
        return None if row is None else _mentor(row)

    async def mentors(self) -> list[Mentor]:
        rows = (await self.session.execute(select(MentorRow))).scalars().all()
        return [_mentor(row) for row in rows]

    async def save_mentor(self, mentor: Mentor) -> None:
        values = dict(
            name=mentor.name,
            chosen=mentor.chosen.value,
            status_message=mentor.status_message,
            status_data=mentor.status_data,
            online=mentor.online,
            session_calls=json.dumps(sorted(mentor.session_calls)),
            ended_calls=json.dumps(list(mentor.ended_calls)),
            updated_at=mentor.updated_at,
        )
        result = await self.session.execute(
            update(MentorRow).where(MentorRow.mentor_id == mentor.mentor_id).values(**values)
        )
        if not getattr(result, "rowcount", 0):
            self.session.add(MentorRow(mentor_id=mentor.mentor_id, **values))
        await self.session.flush()


class PresenceStore:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self._sessions = sessions(self.engine)
        self._read_sessions = sessions(reader(self.engine))

    async def create(self) -> None:
        await create_tables(self.engine, Base)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PresenceTx]:
        async with self._sessions() as session, session.begin():
            yield PresenceTx(session)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PresenceTx]:
        """A read-only transaction: does not wait for writers."""
        async with self._read_sessions() as session, session.begin():
            yield PresenceTx(session)
