"""Presence's handlers: each turns one command, fact or timer into domain steps and effects."""

from __future__ import annotations

from services.presence import domain
from services.presence.domain import Mentor, Status
from services.presence.pacing import BroadcastPacer, Pace
from services.presence.store import PresenceStore, PresenceTx
from shared.clock import now
from shared.protocol.domain import (
    MENTOR_STATUS_CHANGED,
    USER_OFFLINE,
    USER_ONLINE,
    CallFact,
    ConnectionFact,
    GatewayHeartbeat,
)
from shared.protocol.envelope import CommandOrigin
from shared.protocol.presence import MentorAvailable, MentorBusy
from shared.runtime.outbox import Outbox, Request
from shared.settings import Settings

MENTOR = "mentor"
GRACE_EXPIRED = "grace_expired"
GATEWAY_EXPIRED = "gateway_expired"
FLUSH_STATUS = "flush_status"


class PresenceHandlers:
    def __init__(self, settings: Settings, store: PresenceStore) -> None:
        self.settings = settings
        self.store = store
        self.pacer = BroadcastPacer(settings.status_coalesce_ms / 1000)

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
        sender = req.sender
        async with self.store.transaction() as tx:
            before = await tx.mentor(sender.user_id)
            online = before.online if before else (await tx.connection_count(sender.user_id)) > 0
            current = before or Mentor(sender.user_id, sender.name, online=online)
            after = domain.choose_status(current, status, message, data, now())
            await tx.save_mentor(after)
        self._publish_if_changed(req.out, before, after)
        req.out.reply = after.view(to_self=True)

    async def get_mentors(self, req: Request) -> None:
        async with self.store.snapshot() as tx:
            mentors = await tx.mentors()
        me = req.sender.user_id
        req.out.reply = {"mentors": [m.view_for(me) for m in domain.listing_order(mentors)]}

    # -- connections -----------------------------------------------------------------------

    async def connection_opened(self, req: Request) -> None:
        fact = ConnectionFact.model_validate(req.data)
        async with self.store.transaction() as tx:
            await tx.gateway_seen(fact.gateway_id, now())
            await tx.add_connection(fact.connection_id, fact.user_id, fact.gateway_id, fact.at)
            user = await tx.user(fact.user_id, fact.role)
            came_online = not user.online
            await tx.save_user(user.connected())
            if came_online:
                req.out.emit(USER_ONLINE, {"user_id": fact.user_id, "role": fact.role})
            if fact.role == MENTOR:
                before = await tx.mentor(fact.user_id)
                current = before or Mentor(fact.user_id, fact.name)
                after = domain.set_online(current, True, now(), name=fact.name)
                if domain.changed(before, after):
                    await tx.save_mentor(after)
                    self._publish_if_changed(req.out, before, after)
            mentors = [] if fact.resumed else await tx.mentors()
        if not fact.resumed:
            origin = CommandOrigin(
                gateway_id=fact.gateway_id, connection_id=fact.connection_id, reply_to=fact.reply_to
            )
            views = [m.view_for(fact.user_id) for m in domain.listing_order(mentors)]
            req.out.push_connection(origin, "mentor_status_snapshot", {"mentors": views})

    async def connection_closed(self, req: Request) -> None:
        fact = ConnectionFact.model_validate(req.data)
        async with self.store.transaction() as tx:
            await self._close(tx, req.out, fact.connection_id)

    async def _close(self, tx: PresenceTx, out: Outbox, connection_id: str) -> None:
        user_id = await tx.remove_connection(connection_id)
        if user_id is None or await tx.connection_count(user_id) > 0:
            return
        user = await tx.user(user_id, role="")
        advanced, stamp = user.last_connection_closed()
        await tx.save_user(advanced)
        out.schedule(
            GRACE_EXPIRED,
            {"user_id": user_id, "generation": stamp},
            self.settings.reconnect_grace_s,
        )

    async def grace_expired(self, req: Request) -> None:
        user_id, stamp = str(req.data["user_id"]), int(req.data["generation"])
        async with self.store.transaction() as tx:
            user = await tx.user(user_id, role="")
            offline = user.grace_expired(stamp, await tx.connection_count(user_id) > 0)
            if offline is None:
                return
            await tx.save_user(offline)
            req.out.emit(USER_OFFLINE, {"user_id": user_id, "role": user.role})
            before = await tx.mentor(user_id)
            if before is not None:
                after = domain.set_online(before, False, now())
                await tx.save_mentor(after)
                self._publish_if_changed(req.out, before, after)

    # -- gateways --------------------------------------------------------------------------

    async def gateway_heartbeat(self, req: Request) -> None:
        """A gateway lives: note it, and close the connections it no longer holds."""
        beat = GatewayHeartbeat.model_validate(req.data)
        async with self.store.transaction() as tx:
            await tx.gateway_seen(beat.gateway_id, now())
            for connection_id in await tx.stale_connections(
                beat.gateway_id, set(beat.connection_ids), before=beat.at
            ):
                await self._close(tx, req.out, connection_id)

    async def gateway_expired(self, req: Request) -> None:
        """A gateway went silent (killed, partitioned): all its connections are gone."""
        gateway_id = str(req.data["gateway_id"])
        cutoff = now() - self.settings.gateway_timeout_s
        async with self.store.transaction() as tx:
            if not await tx.claim_dead_gateway(gateway_id, cutoff):
                return
            for connection_id in await tx.connections_of_gateway(gateway_id):
                await self._close(tx, req.out, connection_id)

    # -- calls -----------------------------------------------------------------------------

    async def call_accepted(self, req: Request) -> None:
        await self._session(req, started=True)

    async def call_ended(self, req: Request) -> None:
        await self._session(req, started=False)

    async def _session(self, req: Request, started: bool) -> None:
        fact = CallFact.model_validate(req.data)
        step = domain.session_started if started else domain.session_ended
        async with self.store.transaction() as tx:
            for party in (fact.caller_id, fact.receiver_id):
                before = await tx.mentor(party)
                if before is None:
                    continue
                after = step(before, fact.call_id, now())
                if after is not before:
                    await tx.save_mentor(after)
                    self._publish_if_changed(req.out, before, after)

    async def snapshot_requested(self, req: Request) -> None:
        """Another service rebuilds its view of mentors: tell it every mentor's state."""
        async with self.store.snapshot() as tx:
            mentors = await tx.mentors()
        for mentor in mentors:
            req.out.emit(MENTOR_STATUS_CHANGED, mentor.view())

    # -- effects ---------------------------------------------------------------------------

    def _publish_if_changed(self, out: Outbox, before: Mentor | None, after: Mentor) -> None:
        """Other services hear of a change at once; clients at the pace of the broadcasts."""
        if not domain.changed(before, after):
            return
        out.emit(MENTOR_STATUS_CHANGED, after.view())
        pace = self.pacer.decide(after.mentor_id)
        if pace is Pace.NOW:
            self._broadcast(out, after)
        elif pace is Pace.ARM:
            out.schedule(FLUSH_STATUS, {"mentor_id": after.mentor_id}, self.pacer.window_s)

    async def flush_status(self, req: Request) -> None:
        """Timer: broadcast the mentor's status as it is now (the latest of a burst)."""
        mentor_id = str(req.data.get("mentor_id", ""))
        async with self.store.snapshot() as tx:
            mentor = await tx.mentor(mentor_id)
        self.pacer.flushed(mentor_id)
        if mentor is not None:
            self._broadcast(req.out, mentor)

    @staticmethod
    def _broadcast(out: Outbox, mentor: Mentor) -> None:
        view = mentor.view()
        out.push_all("mentor_status_update", view)
        own = mentor.view(to_self=True)
        if own != view:  # appearing offline: their own connections still see the truth
            out.push_user(mentor.mentor_id, "mentor_status_update", own)
