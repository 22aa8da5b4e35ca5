"""Presence's own database: connections, users, mentors and gateways.

Each unit of work is a plain function of a :class:`PresenceTx`, run whole in a database
thread (:class:`shared.db.ThreadedDatabase`): one thread hop per unit, not several per
statement. Statements work on sets of keys, so a batch of a hundred connections costs a
handful of statements, not a hundred times as many.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from services.presence.domain import Mentor, UserPresence
from shared.db import DEFAULT_POOL_SIZE, ThreadedDatabase
from shared.dbtypes import ClientString
from shared.migrations import upgrade
from shared.protocol.domain import ConnectionFact
from shared.rows import RowMapper, Stored
from shared.schema import ID

T = TypeVar("T")
metadata = MetaData()

connections = Table(
    "connections",
    metadata,
    Column("connection_id", String(ID), primary_key=True),
    Column("user_id", String(ID), index=True, nullable=False),
    Column("gateway_id", String(ID), index=True, nullable=False),
    Column("opened_at", Float, nullable=False),
)


def _frozen_set(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


# Only the columns that need more than their field's type says are declared; the columns of
# times, flags and JSON are derived from the fields (shared.rows).
_USERS = RowMapper(UserPresence)
_MENTORS = RowMapper(
    Mentor,
    stored={
        "session_calls": Stored(dump=lambda calls: json.dumps(sorted(calls)), load=_frozen_set),
        "ended_calls": Stored(dump=lambda calls: json.dumps(list(calls)), load=_tuple),
    },
)

users = _USERS.table(
    "users",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("role", String(16), nullable=False),
)

mentors = _MENTORS.table(
    "mentors",
    metadata,
    Column("mentor_id", String(ID), primary_key=True),
    Column("name", ClientString(80), nullable=False),
    Column("chosen", String(16), nullable=False),
    Column("status_message", ClientString(140), nullable=True),
    Column("session_calls", String, nullable=False),  # JSON text
    Column("ended_calls", String, nullable=False),  # JSON text
)

gateways = Table(
    "gateways",
    metadata,
    Column("gateway_id", String(ID), primary_key=True),
    Column("last_seen", Float, nullable=False),
)


_UPDATE_USER = (
    update(users)
    .where(users.c.user_id == bindparam("key"))
    .values(online=bindparam("online"), generation=bindparam("generation"))
)
_UPDATE_GATEWAY = (
    update(gateways)
    .where(gateways.c.gateway_id == bindparam("key"))
    .values(last_seen=bindparam("last_seen"))
)


class PresenceTx:
    """The reads and writes of one transaction (synchronous: it runs in a database thread)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # connections
    def add_connections(self, opened: Iterable[ConnectionFact]) -> list[ConnectionFact]:
        """Record connections; returns those that were not known already."""
        wanted = {fact.connection_id: fact for fact in opened}
        if not wanted:
            return []
        known = set(
            self.conn.execute(
                select(connections.c.connection_id).where(
                    connections.c.connection_id.in_(list(wanted))
                )
            ).scalars()
        )
        new = [fact for cid, fact in wanted.items() if cid not in known]
        if new:
            self.conn.execute(
                insert(connections),
                [
                    {
                        "connection_id": f.connection_id,
                        "user_id": f.user_id,
                        "gateway_id": f.gateway_id,
                        "opened_at": f.at,
                    }
                    for f in new
                ],
            )
        return new

    def remove_connections(self, connection_ids: Collection[str]) -> dict[str, str]:
        """Forget connections; connection id → user id of those that were known."""
        if not connection_ids:
            return {}
        ids = list(connection_ids)
        known = {
            cid: user_id
            for cid, user_id in self.conn.execute(
                select(connections.c.connection_id, connections.c.user_id).where(
                    connections.c.connection_id.in_(ids)
                )
            )
        }
        if known:
            self.conn.execute(delete(connections).where(connections.c.connection_id.in_(known)))
        return known

    def connection_counts(
        self, user_ids: Collection[str], on_gateways_seen_since: float | None = None
    ) -> dict[str, int]:
        """How many connections each of ``user_ids`` has (0 for none); with a time, only
        those on gateways heard from since then."""
        counts = dict.fromkeys(user_ids, 0)
        if counts:
            query = (
                select(connections.c.user_id, func.count())
                .where(connections.c.user_id.in_(list(counts)))
                .group_by(connections.c.user_id)
            )
            if on_gateways_seen_since is not None:
                query = query.join(
                    gateways, gateways.c.gateway_id == connections.c.gateway_id
                ).where(gateways.c.last_seen >= on_gateways_seen_since)
            counts.update({user_id: int(n) for user_id, n in self.conn.execute(query)})
        return counts

    def connection_count(self, user_id: str) -> int:
        return self.connection_counts([user_id])[user_id]

    def stale_connections(self, gateway_id: str, live: set[str], before: float) -> list[str]:
        """Connections of ``gateway_id`` opened before ``before`` that it no longer holds."""
        query = select(connections.c.connection_id).where(
            connections.c.gateway_id == gateway_id, connections.c.opened_at < before
        )
        return [c for c in self.conn.execute(query).scalars() if c not in live]

    def users_of(self, connection_ids: Collection[str]) -> set[str]:
        """The users holding these connections (those known)."""
        if not connection_ids:
            return set()
        query = select(connections.c.user_id).where(
            connections.c.connection_id.in_(list(connection_ids))
        )
        return set(self.conn.execute(query).scalars())

    def gateways_of(self, user_ids: Collection[str]) -> dict[str, set[str]]:
        """The gateways holding each user's connections (users without any: absent)."""
        if not user_ids:
            return {}
        query = (
            select(connections.c.user_id, connections.c.gateway_id)
            .where(connections.c.user_id.in_(list(user_ids)))
            .distinct()
        )
        spread: dict[str, set[str]] = {}
        for user_id, gateway_id in self.conn.execute(query):
            spread.setdefault(user_id, set()).add(gateway_id)
        return spread

    def connections_of_gateway(self, gateway_id: str) -> list[str]:
        query = select(connections.c.connection_id).where(connections.c.gateway_id == gateway_id)
        return list(self.conn.execute(query).scalars())

    # gateways
    def gateway_seen(self, gateway_id: str, now: float) -> None:
        found = self.conn.execute(_UPDATE_GATEWAY, [{"key": gateway_id, "last_seen": now}])
        if not found.rowcount:
            self.conn.execute(insert(gateways).values(gateway_id=gateway_id, last_seen=now))

    def silent_gateways(self, since: float) -> list[str]:
        query = select(gateways.c.gateway_id).where(gateways.c.last_seen < since)
        return list(self.conn.execute(query).scalars())

    def claim_dead_gateway(self, gateway_id: str, since: float) -> bool:
        """Delete the gateway if still silent; True for exactly one claimant."""
        result = self.conn.execute(
            delete(gateways).where(
                gateways.c.gateway_id == gateway_id, gateways.c.last_seen < since
            )
        )
        return bool(result.rowcount)

    # users
    def users(self, roles: dict[str, str]) -> dict[str, UserPresence]:
        """Each user of ``roles`` (user id → role for one not seen before)."""
        found = {
            row["user_id"]: _USERS.to_object(row)
            for row in self.conn.execute(
                select(users).where(users.c.user_id.in_(list(roles)))
            ).mappings()
        }
        return {uid: found.get(uid) or UserPresence(uid, role) for uid, role in roles.items()}

    def save_users(self, changed: Collection[UserPresence]) -> None:
        if not changed:
            return
        rows = [{"key": u.user_id, "online": u.online, "generation": u.generation} for u in changed]
        known = set(
            self.conn.execute(
                select(users.c.user_id).where(users.c.user_id.in_([u.user_id for u in changed]))
            ).scalars()
        )
        updates = [row for row in rows if row["key"] in known]
        if updates:
            self.conn.execute(_UPDATE_USER, updates)
        new = [u for u in changed if u.user_id not in known]
        if new:
            self.conn.execute(
                insert(users),
                [_USERS.to_row(u) for u in new],
            )

    # mentors
    def mentor(self, mentor_id: str) -> Mentor | None:
        return self.mentors_of([mentor_id]).get(mentor_id)

    def mentors_of(self, mentor_ids: Collection[str]) -> dict[str, Mentor]:
        if not mentor_ids:
            return {}
        query = select(mentors).where(mentors.c.mentor_id.in_(list(mentor_ids)))
        found = [_MENTORS.to_object(row) for row in self.conn.execute(query).mappings()]
        return {mentor.mentor_id: mentor for mentor in found}

    def mentors(self) -> list[Mentor]:
        return [_MENTORS.to_object(row) for row in self.conn.execute(select(mentors)).mappings()]

    def save_mentor(self, mentor: Mentor) -> None:
        values = _MENTORS.to_row(mentor)
        result = self.conn.execute(
            update(mentors).where(mentors.c.mentor_id == mentor.mentor_id).values(**values)
        )
        if not result.rowcount:
            self.conn.execute(insert(mentors).values(**values))


class PresenceStore:
    def __init__(
        self, url: str, pool_size: int = DEFAULT_POOL_SIZE, writes_on_loop: bool = True
    ) -> None:
        self.db = ThreadedDatabase(url, pool_size, writes_on_loop)

    async def start(self) -> None:
        """Bring the database to the latest migration."""
        await self.db.migrate(lambda conn: upgrade(conn, "presence", metadata))

    async def close(self) -> None:
        await self.db.close()

    async def write(self, work: Callable[[PresenceTx], T]) -> T:
        """Run ``work`` in one read-write transaction (replicas' writes are serialized: on
        SQLite by the file's lock, on PostgreSQL by SERIALIZABLE, ``work`` run again whole
        when refused — so it must not change anything but the database)."""
        return await self.db.write(lambda conn: work(PresenceTx(conn)))

    async def read(self, work: Callable[[PresenceTx], T]) -> T:
        """Run ``work`` in a read-only transaction: it does not wait for writers."""
        return await self.db.read(lambda conn: work(PresenceTx(conn)))
