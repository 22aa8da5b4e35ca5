"""The help service's own database: requests, who was shown each, and the mentor view.

Every decision that two replicas could race on is one conditional statement in one
transaction: a request leaves ``open`` only through ``UPDATE … WHERE status = 'open'`` and
whoever changed the row (rowcount 1) owns the outcome. On SQLite, write transactions start
with ``BEGIN IMMEDIATE`` (``shared.db``) so replicas sharing the file queue on the lock
instead of failing to upgrade a read lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.help.domain import HelpRequest, MentorState, Status, supersedes
from services.help.tables import PRIORITY, Base, M, R, S, to_mentor, to_request
from shared.db import create_engine, create_tables, reader


def _upsert_for(engine: AsyncEngine) -> Any:
    """``INSERT … ON CONFLICT`` of the engine's dialect (SQLite by default, or PostgreSQL)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


class HelpStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.reads = reader(engine)
        self._upsert = _upsert_for(engine)

    @classmethod
    async def open(cls, url: str) -> HelpStore:
        engine = create_engine(url)
        await create_tables(engine, Base)
        return cls(engine)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reads.begin() as conn:
            yield conn

    # -- mentor view ------------------------------------------------------------------------

    async def mentor(self, mentor_id: str) -> MentorState | None:
        async with self._read() as conn:
            row = (await conn.execute(select(M).where(M.c.mentor_id == mentor_id))).first()
        return to_mentor(row) if row else None

    async def apply_mentor(self, new: MentorState) -> tuple[MentorState | None, bool]:
        """Store ``new`` unless a later change is already stored; returns (previous, applied)."""
        async with self._write() as conn:
            row = (await conn.execute(select(M).where(M.c.mentor_id == new.mentor_id))).first()
            old = to_mentor(row) if row else None
            if not supersedes(old, new):
                return old, False
            values = {
                "name": new.name,
                "status": new.status,
                "online": new.online,
                "updated_at": new.updated_at,
            }
            if old is None:
                await conn.execute(M.insert().values(mentor_id=new.mentor_id, **values))
            else:
                await conn.execute(update(M).where(M.c.mentor_id == new.mentor_id).values(values))
            return old, True

    # -- requests ---------------------------------------------------------------------------

    async def create(self, request: HelpRequest, audience: Iterable[str]) -> list[str]:
        """Store a new request shown to ``audience``; for a broadcast, ``audience`` is
        ignored and the mentors available in the view at commit time are used (returned)."""
        async with self._write() as conn:
            if request.is_broadcast:
                rows = await conn.execute(
                    select(M.c.mentor_id).where(M.c.online.is_(True), M.c.status == "available")
                )
                shown = [r.mentor_id for r in rows]
            else:
                shown = list(audience)
            await conn.execute(
                R.insert().values(
                    request_id=request.request_id,
                    student_id=request.student_id,
                    student_name=request.student_name,
                    subject=request.subject,
                    message=request.message,
                    urgency=request.urgency.value,
                    urgency_rank=request.urgency.rank,
                    mentor_id=request.mentor_id,
                    status=request.status.value,
                    created_at=request.created_at,
                    expires_at=request.expires_at,
                )
            )
            if shown:
                await conn.execute(
                    S.insert(),
                    [
                        {
                            "request_id": request.request_id,
                            "mentor_id": m,
                            "shown_at": request.created_at,
                            "declined": False,
                        }
                        for m in shown
                    ],
                )
        return shown

    async def get(self, request_id: str) -> HelpRequest | None:
        async with self._read() as conn:
            row = (await conn.execute(select(R).where(R.c.request_id == request_id))).first()
        return to_request(row) if row else None

    async def find_duplicate(
        self, request: HelpRequest, since: float, any_status: bool
    ) -> HelpRequest | None:
        """The same student's request with the same content created after ``since``
        (open only, unless ``any_status``): a redelivered or double-sent command."""
        query = select(R).where(
            R.c.student_id == request.student_id,
            R.c.subject == request.subject,
            R.c.message == request.message,
            R.c.urgency == request.urgency.value,
            R.c.mentor_id.is_(None)
            if request.mentor_id is None
            else R.c.mentor_id == request.mentor_id,
            R.c.created_at >= since,
        )
        if not any_status:
            query = query.where(R.c.status == Status.OPEN.value)
        async with self._read() as conn:
            row = (await conn.execute(query.order_by(R.c.created_at.desc()).limit(1))).first()
        return to_request(row) if row else None

    async def finish(self, after: HelpRequest) -> tuple[bool, list[str]]:
        """Move an open request to ``after`` (its closed state). Returns whether this call made
        the move (False: it was no longer open) and who was shown the request."""
        async with self._write() as conn:
            result = await conn.execute(
                update(R)
                .where(R.c.request_id == after.request_id, R.c.status == Status.OPEN.value)
                .values(
                    status=after.status.value,
                    closed_at=after.closed_at,
                    closed_by=after.closed_by,
                    closed_by_name=after.closed_by_name,
                    decline_reason=after.decline_reason,
                )
            )
            won = result.rowcount == 1
            shown = await conn.execute(
                select(S.c.mentor_id).where(S.c.request_id == after.request_id)
            )
            return won, [r.mentor_id for r in shown]

    async def shown_to(self, request_id: str) -> list[str]:
        async with self._read() as conn:
            rows = await conn.execute(select(S.c.mentor_id).where(S.c.request_id == request_id))
            return [r.mentor_id for r in rows]

    async def decline_broadcast(self, request_id: str, mentor_id: str, now: float) -> bool:
        """Hide an open broadcast from one mentor; False when it is no longer open."""
        async with self._write() as conn:
            still_open = (
                await conn.execute(
                    select(R.c.request_id).where(
                        R.c.request_id == request_id, R.c.status == Status.OPEN.value
                    )
                )
            ).first()
            if still_open is None:
                return False
            stmt = self._upsert(S).values(
                request_id=request_id, mentor_id=mentor_id, shown_at=now, declined=True
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[S.c.request_id, S.c.mentor_id], set_={"declined": True}
                )
            )
            return True

    async def catch_up(
        self,
        mentor_id: str,
        *,
        broadcasts: bool,
        targeted: bool,
        now: float,
        limit: int = 100,
        not_shown_since: float | None = None,
    ) -> list[HelpRequest]:
        """The open requests to push to a mentor (targeted at them; broadcasts they did not
        decline), most urgent then oldest, at most ``limit`` (the mentor lists the rest with
        ``list_help_requests``), recorded as shown (at ``now``) in the same transaction.
        With ``not_shown_since``: only those not shown to this mentor since then."""
        async with self._write() as conn:
            requests = await self._visible(conn, mentor_id, broadcasts, targeted)
            if not_shown_since is not None and requests:
                recent = await conn.execute(
                    select(S.c.request_id).where(
                        S.c.mentor_id == mentor_id,
                        S.c.shown_at >= not_shown_since,
                        S.c.request_id.in_([r.request_id for r in requests]),
                    )
                )
                shown = set(recent.scalars())
                requests = [r for r in requests if r.request_id not in shown]
            requests = requests[:limit]
            if requests:
                stmt = self._upsert(S)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[S.c.request_id, S.c.mentor_id],
                    set_={"shown_at": stmt.excluded.shown_at},
                )
                await conn.execute(
                    stmt,
                    [
                        {
                            "request_id": r.request_id,
                            "mentor_id": mentor_id,
                            "shown_at": now,
                            "declined": False,
                        }
                        for r in requests
                    ],
                )
        return requests

    async def visible_to(self, mentor_id: str) -> list[HelpRequest]:
        """``list_help_requests`` for a mentor."""
        async with self._read() as conn:
            return await self._visible(conn, mentor_id, broadcasts=True, targeted=True)

    async def _visible(
        self, conn: AsyncConnection, mentor_id: str, broadcasts: bool, targeted: bool
    ) -> list[HelpRequest]:
        declined = select(S.c.request_id).where(S.c.mentor_id == mentor_id, S.c.declined.is_(True))
        audience = []
        if targeted:
            audience.append(R.c.mentor_id == mentor_id)
        if broadcasts:
            audience.append(and_(R.c.mentor_id.is_(None), R.c.request_id.not_in(declined)))
        if not audience:
            return []
        rows = await conn.execute(
            select(R).where(R.c.status == Status.OPEN.value, or_(*audience)).order_by(*PRIORITY)
        )
        return [to_request(r) for r in rows]

    async def open_count(self, student_id: str) -> int:
        """How many of the student's requests are still open."""
        async with self._read() as conn:
            query = select(func.count()).where(
                R.c.student_id == student_id, R.c.status == Status.OPEN.value
            )
            return int((await conn.execute(query)).scalar_one())

    async def of_student(self, student_id: str, limit: int) -> list[HelpRequest]:
        """``list_help_requests`` for a student: their own, newest first."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(R)
                .where(R.c.student_id == student_id)
                .order_by(R.c.created_at.desc(), R.c.request_id)
                .limit(limit)
            )
            return [to_request(r) for r in rows]
