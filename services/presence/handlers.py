"""Presence's handlers: each turns one command, fact or timer into domain steps and effects.

The database part of each is a synchronous unit of work (``_…_in``, built of the steps in
``units.py``) run whole in a database thread; it returns what changed, and the effects are
decided back on the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, model_validator

from services.presence import domain, views
from services.presence.domain import Mentor, Status, chunks, spread_changes
from services.presence.pacing import BroadcastPacer, Pace
from services.presence.store import PresenceStore, PresenceTx
from services.presence.units import (
    Changes,
    close_connections,
    close_tracking_spread,
    open_connections,
)
from shared.amqp.topology import Topology
from shared.clock import now
from shared.protocol.domain import (
    CALL_ACCEPTED,
    CALL_ENDED,
    CONNECTIONS_CHANGED,
    GATEWAY_HEARTBEAT,
    MENTOR_STATUS_CHANGED,
    SNAPSHOT_REQUESTED,
    USERS_OFFLINE,
    USERS_ONLINE,
    CallFact,
    ConnectionFact,
    ConnectionsChanged,
    GatewayHeartbeat,
)
from shared.protocol.envelope import CLOSE_TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS, CommandOrigin
from shared.protocol.presence import MentorAvailable, MentorBusy
from shared.runtime.outbox import Outbox, Request
from shared.runtime.routes import Routes, command, fact, routes, timer
from shared.settings import Settings

GRACE_EXPIRED = "grace_expired"
GATEWAY_EXPIRED = "gateway_expired"
FLUSH_STATUS = "flush_status"


class GraceExpired(BaseModel):
    """The ``grace_expired`` timer: the users whose last connection closed in one unit of
    work, each with the generation the timer was armed with."""

    users: list[tuple[str, int]]

    @model_validator(mode="before")
    @classmethod
    def _one_user(cls, data: Any) -> Any:
        # one armed before timers were batched (still in the delay queue across an upgrade)
        if isinstance(data, dict) and "users" not in data and "user_id" in data:
            return {"users": [[data["user_id"], data.get("generation")]]}
        return data


class GatewayExpired(BaseModel):
    """The watchdog's ``gateway_expired``: a gateway that stopped beating."""

    gateway_id: str


class FlushStatus(BaseModel):
    """The ``flush_status`` timer: broadcast this mentor's latest status."""

    mentor_id: str


class PresenceHandlers:
    def __init__(
        self, settings: Settings, store: PresenceStore, clock: Callable[[], float] = now
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.pacer = BroadcastPacer(settings.status_coalesce_ms / 1000)

    def table(self) -> Routes:
        return routes(
            command("mentor_available", self.mentor_available),
            command("mentor_busy", self.mentor_busy),
            command("get_mentors", self.get_mentors),
            fact(CONNECTIONS_CHANGED, self.connections_changed),
            fact(GATEWAY_HEARTBEAT, self.gateway_heartbeat),
            fact(CALL_ACCEPTED, self.call_accepted),
            fact(CALL_ENDED, self.call_ended),
            fact(SNAPSHOT_REQUESTED, self.snapshot_requested),
            timer(GATEWAY_EXPIRED, GatewayExpired, self.gateway_expired),
            timer(GRACE_EXPIRED, GraceExpired, self.grace_expired),
            timer(FLUSH_STATUS, FlushStatus, self.flush_status),
        )

    # -- client commands -------------------------------------------------------------------

    async def mentor_available(self, req: Request) -> None:
        payload = req.payload_as(MentorAvailable)
        await self._choose(req, Status.AVAILABLE, payload.status_message, payload.status_data)

    async def mentor_busy(self, req: Request) -> None:
        payload = req.payload_as(MentorBusy)
        await self._choose(req, Status(payload.status), payload.status_message, payload.status_data)

    async def _choose(
        self, req: Request, status: Status, message: str | None, data: dict[str, object] | None
    ) -> None:
        sender, at = req.sender, self.clock()

        def choose_in(tx: PresenceTx) -> tuple[Mentor | None, Mentor]:
            before = tx.mentor(sender.user_id)
            online = before.online if before else tx.connection_count(sender.user_id) > 0
            current = before or Mentor(sender.user_id, sender.name, online=online)
            after = domain.choose_status(current, status, message, data, at)
            tx.save_mentor(after)
            return before, after

        before, after = await self.store.write(choose_in)
        # redelivered: the first run may have stored this change and then failed to publish
        # it, so this run finds nothing changed; it publishes the status again (harmless)
        self._publish_if_changed(req.out, before, after, again=req.redelivered)
        req.out.reply = views.mentor_status(after, to_self=True)

    async def get_mentors(self, req: Request) -> None:
        mentors = await self.store.read(lambda tx: tx.mentors())
        req.out.reply = views.mentor_list(mentors, req.sender.user_id)

    # -- connections -----------------------------------------------------------------------

    async def connections_changed(self, req: Request) -> None:
        """A gateway's batch of opened and closed connections, in one transaction."""
        batch = req.payload_as(ConnectionsChanged)
        at, cap = self.clock(), self.settings.max_connections_per_user
        # a gateway silent for two beats is most likely dead (its sockets reconnect
        # elsewhere): what it held does not count against the cap while it expires
        alive_since = at - 2 * self.settings.gateway_heartbeat_s

        def apply_in(tx: PresenceTx) -> Changes:
            changes = Changes()
            for gateway_id in {f.gateway_id for f in (*batch.opened, *batch.closed)}:
                tx.gateway_seen(gateway_id, at)
            touched = {f.user_id for f in (*batch.opened, *batch.closed)}
            before = tx.gateways_of(touched)
            open_connections(tx, batch.opened, at, changes, cap=cap, alive_since=alive_since)
            close_connections(tx, [f.connection_id for f in batch.closed], changes)
            changes.spreads = spread_changes(before, tx.gateways_of(touched))
            if any(not f.resumed and not f.snapshot_sent for f in batch.opened):
                changes.listing = tx.mentors()
            return changes

        changes = await self.store.write(apply_in)
        self._effects(req.out, changes)
        refused = {f.connection_id for f in changes.refused}
        for f in changes.refused:
            req.out.close_connection(_origin(f), CLOSE_TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS)
        wants_snapshot = [
            f
            for f in batch.opened
            if not f.resumed and not f.snapshot_sent and f.connection_id not in refused
        ]
        for f in wants_snapshot:
            req.out.push_connection(_origin(f), views.snapshot(changes.listing, f.user_id))

    async def grace_expired(self, req: Request) -> None:
        """Timer: the reconnect grace ran out for the users whose last connection closed in
        one unit of work (a gateway's restart: thousands), decided in one transaction."""
        stamps = dict(req.payload_as(GraceExpired).users)
        at = self.clock()

        def expire_in(tx: PresenceTx) -> Changes:
            changes = Changes()
            users = tx.users(dict.fromkeys(stamps, ""))
            connected = tx.connection_counts(list(stamps))
            for user_id, stamp in stamps.items():
                offline = users[user_id].grace_expired(stamp, connected[user_id] > 0)
                if offline is not None:
                    changes.offline.append(offline)
            tx.save_users(changes.offline)
            for before in tx.mentors_of([user.user_id for user in changes.offline]).values():
                after = domain.set_online(before, False, at)
                tx.save_mentor(after)
                changes.mentors.append((before, after))
            return changes

        self._effects(req.out, await self.store.write(expire_in))

    # -- gateways --------------------------------------------------------------------------

    async def gateway_heartbeat(self, req: Request) -> None:
        """A gateway lives: note it, and close the connections it no longer holds."""
        beat = req.payload_as(GatewayHeartbeat)
        at = self.clock()

        def beat_in(tx: PresenceTx) -> Changes:
            changes = Changes()
            tx.gateway_seen(beat.gateway_id, at)
            live = set(beat.connection_ids)
            stale = tx.stale_connections(beat.gateway_id, live, before=beat.at)
            close_tracking_spread(tx, stale, changes)
            return changes

        self._effects(req.out, await self.store.write(beat_in))

    async def gateway_expired(self, req: Request) -> None:
        """A gateway went silent (killed, partitioned): all its connections are gone."""
        gateway_id = req.payload_as(GatewayExpired).gateway_id
        cutoff = self.clock() - self.settings.gateway_timeout_s

        def expire_in(tx: PresenceTx) -> Changes:
            changes = Changes()
            if tx.claim_dead_gateway(gateway_id, cutoff):
                close_tracking_spread(tx, tx.connections_of_gateway(gateway_id), changes)
            return changes

        self._effects(req.out, await self.store.write(expire_in))

    # -- calls -----------------------------------------------------------------------------

    async def call_accepted(self, req: Request) -> None:
        await self._session(req, started=True)

    async def call_ended(self, req: Request) -> None:
        await self._session(req, started=False)

    async def _session(self, req: Request, started: bool) -> None:
        call = req.payload_as(CallFact)
        step = domain.session_started if started else domain.session_ended
        at = self.clock()

        def session_in(tx: PresenceTx) -> Changes:
            changes = Changes()
            for before in tx.mentors_of([call.caller_id, call.receiver_id]).values():
                after = step(before, call.call_id, at)
                if after is not before:
                    tx.save_mentor(after)
                    changes.mentors.append((before, after))
            return changes

        self._effects(req.out, await self.store.write(session_in))

    async def snapshot_requested(self, req: Request) -> None:
        """Another service rebuilds its view of mentors: tell it every mentor's state."""
        for mentor in await self.store.read(lambda tx: tx.mentors()):
            req.out.emit(MENTOR_STATUS_CHANGED, views.mentor_status(mentor))

    # -- effects ---------------------------------------------------------------------------

    def _effects(self, out: Outbox, changes: Changes) -> None:
        topology = Topology(self.settings.namespace)
        for user_id, gateways in changes.spreads.items():
            for gateway_id in sorted(gateways):
                out.tell_spread(topology.gateway_queue(gateway_id), user_id, len(gateways))
        for name, users in ((USERS_ONLINE, changes.online), (USERS_OFFLINE, changes.offline)):
            for part in chunks(users):
                out.emit(name, views.users_fact(part))
        for graces in chunks(changes.graces):
            data = GraceExpired(users=graces).model_dump()
            out.schedule(GRACE_EXPIRED, data, self.settings.reconnect_grace_s)
        for before, after in changes.mentors:
            self._publish_if_changed(out, before, after)

    def _publish_if_changed(
        self, out: Outbox, before: Mentor | None, after: Mentor, again: bool = False
    ) -> None:
        """Other services hear of a change at once; clients at the pace of the broadcasts.
        ``again``: publish the status even when unchanged."""
        if not (again or domain.changed(before, after)):
            return
        out.emit(MENTOR_STATUS_CHANGED, views.mentor_status(after))
        pace = self.pacer.decide(after.mentor_id)
        if pace is Pace.NOW:
            self._broadcast(out, after)
        elif pace is Pace.ARM:
            flush = FlushStatus(mentor_id=after.mentor_id).model_dump()
            out.schedule(FLUSH_STATUS, flush, self.pacer.window_s)

    async def flush_status(self, req: Request) -> None:
        """Timer: broadcast the mentor's status as it is now (the latest of a burst)."""
        mentor_id = req.payload_as(FlushStatus).mentor_id
        mentor = await self.store.read(lambda tx: tx.mentor(mentor_id))
        self.pacer.flushed(mentor_id)
        if mentor is not None:
            self._broadcast(req.out, mentor)

    @staticmethod
    def _broadcast(out: Outbox, mentor: Mentor) -> None:
        view = views.status_update(mentor)
        out.push_all(view)
        own = views.status_update(mentor, to_self=True)
        if own != view:  # appearing offline: their own connections still see the truth
            out.push_user(mentor.mentor_id, own)


def _origin(fact: ConnectionFact) -> CommandOrigin:
    return CommandOrigin(
        gateway_id=fact.gateway_id, connection_id=fact.connection_id, reply_to=fact.reply_to
    )
