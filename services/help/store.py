"""The help service's own database: requests, who was shown each, and the mentor view.

Every decision that two replicas could race on is one conditional statement in one
transaction: a request leaves ``open`` only through ``UPDATE … WHERE status = 'open'`` and
whoever changed the row (rowcount 1) owns the outcome. On SQLite, write transactions start
with ``BEGIN IMMEDIATE`` (``shared.db``) so replicas sharing the file queue on the lock
instead of failing to upgrade a read lock.

On PostgreSQL (READ COMMITTED) nothing queues the replicas as a whole, so each transaction that
reads something to decide what it writes locks what it read: the mentor's row (``FOR
UPDATE``) before a status change, the open requests (``FOR SHARE``) it is about to show or
hide, and the mentor view (``LOCK TABLE … IN SHARE MODE``) while a broadcast picks its
audience. A request's close (``UPDATE``) therefore waits for a catch-up that is showing it,
and then finds every mentor it showed; a mentor turning available either is in a broadcast's
audience or, having committed after it, sees the broadcast in their catch-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.help.domain import (
    HelpRequest,
    MentorState,
    Status,
    check_open_limit,
    supersedes,
)
from services.help.tables import (
    PRIORITY,
    help_mentors,
    help_requests,
    help_shown,
    mentor_row,
    metadata,
    request_row,
    to_mentor,
    to_request,
)
from shared.db import DEFAULT_POOL_SIZE, create_engine, reader
from shared.migrations import upgrade_engine

T = TypeVar("T")


def _upsert_for(engine: AsyncEngine) -> Any:
    """``INSERT … ON CONFLICT`` of the engine's dialect (SQLite by default, or PostgreSQL)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


# What closing a request writes (the rest of it never changes).
_CLOSING = ("status", "closed_at", "closed_by", "closed_by_name", "decline_reason")


class HelpStore:
    """The repository of help requests. Reads run in read-only transactions; each write is
    one short transaction."""

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.engine: AsyncEngine = create_engine(url, pool_size)
        self.reads: AsyncEngine = reader(self.engine)
        self._upsert = _upsert_for(self.engine)
        self._postgres = self.engine.dialect.name == "postgresql"

    async def start(self) -> None:
        """Bring the database to the latest migration."""
        await upgrade_engine(self.engine, "help", metadata)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reads.begin() as conn:
            yield conn

    async def _first(self, query: Select[Any], load: Callable[[Any], T]) -> T | None:
        """The first row ``query`` reads, loaded (None when there is none)."""
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return load(row) if row is not None else None

    # -- mentor view ------------------------------------------------------------------------

    async def mentor(self, mentor_id: str) -> MentorState | None:
        return await self._first(
            select(help_mentors).where(help_mentors.c.mentor_id == mentor_id), to_mentor
        )

    async def apply_mentor(self, new: MentorState) -> tuple[MentorState | None, bool]:
        """Store ``new`` unless a later change is already stored; returns (previous, applied)."""
        values = mentor_row(new)
        this_mentor = (
            select(help_mentors).where(help_mentors.c.mentor_id == new.mentor_id).with_for_update()
        )
        async with self._write() as conn:
            while True:
                row = (await conn.execute(this_mentor)).first()
                old = to_mentor(row) if row else None
                if not supersedes(old, new):
                    return old, False
                if old is not None:
                    await conn.execute(
                        update(help_mentors)
                        .where(help_mentors.c.mentor_id == new.mentor_id)
                        .values(values)
                    )
                    return old, True
                first = self._upsert(help_mentors).values(values)
                inserted = await conn.execute(first.on_conflict_do_nothing())
                if inserted.rowcount == 1:
                    return None, True
                # another replica stored this mentor meanwhile (PostgreSQL): decide against it

    # -- requests ---------------------------------------------------------------------------

    async def insert_request(self, request: HelpRequest, audience: Iterable[str]) -> list[str]:
        """Store a new request shown to ``audience``; for a broadcast, ``audience`` is
        ignored and the mentors available in the view at commit time are used (returned)."""
        async with self._write() as conn:
            return await self._insert(conn, request, audience)

    async def admit_request(
        self, request: HelpRequest, audience: Iterable[str], max_open: int, duplicate_since: float
    ) -> tuple[HelpRequest, list[str] | None]:
        """Store a new request as :meth:`insert_request` does, unless the student already has
        the same one open since ``duplicate_since`` (returned, with None) or ``max_open`` open
        requests (:class:`Conflict`). Decided in the insert's transaction, one student at a
        time (SQLite's write lock; a per-student advisory lock on PostgreSQL), so replicas
        racing on one student's requests cannot pass the cap or store a double tap twice."""
        async with self._write() as conn:
            if self._postgres:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"help.student:{request.student_id}"},
                )
            row = (await conn.execute(_duplicate_query(request, duplicate_since, False))).first()
            if row is not None:
                return to_request(row), None
            check_open_limit(
                int((await conn.execute(_open_count(request.student_id))).scalar_one()), max_open
            )
            return request, await self._insert(conn, request, audience)

    async def _insert(
        self, conn: AsyncConnection, request: HelpRequest, audience: Iterable[str]
    ) -> list[str]:
        if request.is_broadcast:
            if self._postgres:  # no mentor changes status until this request is stored
                await conn.execute(text(f"LOCK TABLE {help_mentors.name} IN SHARE MODE"))
            rows = await conn.execute(
                select(help_mentors.c.mentor_id).where(
                    help_mentors.c.online.is_(True), help_mentors.c.status == "available"
                )
            )
            shown = [r.mentor_id for r in rows]
        else:
            shown = list(audience)
        await conn.execute(help_requests.insert().values(request_row(request)))
        if shown:
            await conn.execute(
                help_shown.insert(),
                [_shown(request.request_id, m, request.created_at) for m in shown],
            )
        return shown

    async def get(self, request_id: str) -> HelpRequest | None:
        return await self._first(
            select(help_requests).where(help_requests.c.request_id == request_id), to_request
        )

    async def find_duplicate(
        self, request: HelpRequest, since: float, any_status: bool
    ) -> HelpRequest | None:
        """The same student's request with the same content created after ``since``
        (open only, unless ``any_status``): a redelivered or double-sent command."""
        return await self._first(_duplicate_query(request, since, any_status), to_request)

    async def finish(self, after: HelpRequest) -> tuple[bool, list[str]]:
        """Move an open request to ``after`` (its closed state). Returns whether this call made
        the move (False: it was no longer open) and who was shown the request."""
        values = request_row(after)
        async with self._write() as conn:
            result = await conn.execute(
                update(help_requests)
                .where(
                    help_requests.c.request_id == after.request_id,
                    help_requests.c.status == Status.OPEN.value,
                )
                .values({name: values[name] for name in _CLOSING})
            )
            won = result.rowcount == 1
            return won, list((await conn.execute(_shown_to(after.request_id))).scalars())

    async def shown_to(self, request_id: str) -> list[str]:
        async with self._read() as conn:
            return list((await conn.execute(_shown_to(request_id))).scalars())

    async def decline_broadcast(self, request_id: str, mentor_id: str, now: float) -> bool:
        """Hide an open broadcast from one mentor; False when it is no longer open."""
        async with self._write() as conn:
            still_open = (
                await conn.execute(
                    select(help_requests.c.request_id)
                    .where(
                        help_requests.c.request_id == request_id,
                        help_requests.c.status == Status.OPEN.value,
                    )
                    .with_for_update(read=True)  # stays open until this decline is stored
                )
            ).first()
            if still_open is None:
                return False
            stmt = self._upsert(help_shown).values(
                request_id=request_id, mentor_id=mentor_id, shown_at=now, declined=True
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[help_shown.c.request_id, help_shown.c.mentor_id],
                    set_={"declined": True},
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
            # locked (FOR SHARE): a request is not closed while being shown to this mentor
            requests = await self._visible(conn, mentor_id, broadcasts, targeted, lock=True)
            if not_shown_since is not None and requests:
                recent = await conn.execute(
                    select(help_shown.c.request_id).where(
                        help_shown.c.mentor_id == mentor_id,
                        help_shown.c.shown_at >= not_shown_since,
                        help_shown.c.request_id.in_([r.request_id for r in requests]),
                    )
                )
                shown = set(recent.scalars())
                requests = [r for r in requests if r.request_id not in shown]
            requests = requests[:limit]
            if requests:
                stmt = self._upsert(help_shown)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[help_shown.c.request_id, help_shown.c.mentor_id],
                    set_={"shown_at": stmt.excluded.shown_at},
                )
                await conn.execute(stmt, [_shown(r.request_id, mentor_id, now) for r in requests])
        return requests

    async def visible_to(self, mentor_id: str) -> list[HelpRequest]:
        """``list_help_requests`` for a mentor."""
        async with self._read() as conn:
            return await self._visible(conn, mentor_id, broadcasts=True, targeted=True)

    async def _visible(
        self,
        conn: AsyncConnection,
        mentor_id: str,
        broadcasts: bool,
        targeted: bool,
        lock: bool = False,
    ) -> list[HelpRequest]:
        declined = select(help_shown.c.request_id).where(
            help_shown.c.mentor_id == mentor_id, help_shown.c.declined.is_(True)
        )
        audience = []
        if targeted:
            audience.append(help_requests.c.mentor_id == mentor_id)
        if broadcasts:
            audience.append(
                and_(
                    help_requests.c.mentor_id.is_(None), help_requests.c.request_id.not_in(declined)
                )
            )
        if not audience:
            return []
        query: Select[Any] = (
            select(help_requests)
            .where(help_requests.c.status == Status.OPEN.value, or_(*audience))
            .order_by(*PRIORITY)
        )
        if lock:
            query = query.with_for_update(read=True, of=help_requests)
        return [to_request(r) for r in await conn.execute(query)]

    async def open_count(self, student_id: str) -> int:
        """How many of the student's requests are still open."""
        async with self._read() as conn:
            return int((await conn.execute(_open_count(student_id))).scalar_one())

    async def of_student(self, student_id: str, limit: int) -> list[HelpRequest]:
        """``list_help_requests`` for a student: their own, newest first."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(help_requests)
                .where(help_requests.c.student_id == student_id)
                .order_by(help_requests.c.created_at.desc(), help_requests.c.request_id)
                .limit(limit)
            )
            return [to_request(r) for r in rows]


def _duplicate_query(request: HelpRequest, since: float, any_status: bool) -> Select[Any]:
    """The newest of the student's requests with the same content created after ``since``
    (open ones only, unless ``any_status``)."""
    query = select(help_requests).where(
        help_requests.c.student_id == request.student_id,
        help_requests.c.subject == request.subject,
        help_requests.c.message == request.message,
        help_requests.c.urgency == request.urgency.value,
        help_requests.c.mentor_id.is_(None)
        if request.mentor_id is None
        else help_requests.c.mentor_id == request.mentor_id,
        help_requests.c.created_at >= since,
    )
    if not any_status:
        query = query.where(help_requests.c.status == Status.OPEN.value)
    return query.order_by(help_requests.c.created_at.desc()).limit(1)


def _shown(request_id: str, mentor_id: str, at: float) -> dict[str, Any]:
    """The ``help_shown`` row of ``mentor_id`` being shown ``request_id`` at ``at``."""
    return {"request_id": request_id, "mentor_id": mentor_id, "shown_at": at, "declined": False}


def _shown_to(request_id: str) -> Select[Any]:
    """The mentors ``request_id`` was shown to."""
    return select(help_shown.c.mentor_id).where(help_shown.c.request_id == request_id)


def _open_count(student_id: str) -> Select[Any]:
    return select(func.count()).where(
        help_requests.c.student_id == student_id,
        help_requests.c.status == Status.OPEN.value,
    )
