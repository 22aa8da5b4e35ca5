"""One async function per event: Request → domain → store → effects (``req.out``).

Every state change is announced to both parties on all their connections; the facts
``calls.call_accepted`` / ``calls.call_ended`` tell presence when a call starts and stops
occupying a mentor. A command may be redelivered after a crash between commit and publish,
so handlers re-announce what their first run committed instead of failing on it.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from services.calls import domain, views
from services.calls.domain import Call, Caller, CallState, RejectReason
from services.calls.live import LiveCalls
from services.calls.store import CallStore
from shared.clock import now
from shared.errors import Conflict, InvalidPayload, NotFound
from shared.protocol import calls as wire
from shared.protocol.domain import (
    CALL_ACCEPTED,
    CALL_ENDED,
    CONNECTIONS_CHANGED,
    USERS_OFFLINE,
    CallFact,
    ConnectionsChanged,
    UsersPresenceFact,
)
from shared.protocol.envelope import CommandOrigin
from shared.runtime.outbox import Outbox, Request, UserPush
from shared.runtime.routes import Routes, command, fact, routes, timer

log = logging.getLogger(__name__)

RING_TIMEOUT = "ring_timeout"
LIST_CALLS = "list_calls"
# A state-changing command re-reads and retries this often when another writer moved the
# call first; states only move forward, so the domain refuses the move long before.
_ATTEMPTS = 4
# A redelivered fact re-announces the system endings of this recent past (a redelivery comes
# within seconds; the window only bounds the query).
REANNOUNCE_WINDOW_S = 60.0

Decide = Callable[[Call], Call]


class RingTimeout(BaseModel):
    """The data of the ``ring_timeout`` timer."""

    call_id: str


def new_call_id() -> str:
    return uuid.uuid4().hex


def announce(out: Outbox, call: Call) -> None:
    """Tell both parties the state ``call`` has reached; tell presence when a call starts
    or stops occupying its parties."""
    # Not the reason: a rejecting user may have typed it (user text never reaches the logs).
    log.info("call %s %s", call.call_id, call.state.value)
    push = views.state_push(call)
    for user_id in call.parties:
        out.push_user(user_id, push)
    fact = CallFact(call_id=call.call_id, caller_id=call.caller_id, receiver_id=call.receiver_id)
    if call.state is CallState.ACCEPTED:
        out.emit(CALL_ACCEPTED, fact.model_dump())
    elif call.state is CallState.ENDED and call.accepted_at is not None:
        out.emit(CALL_ENDED, fact.model_dump())


class CallHandlers:
    def __init__(
        self,
        store: CallStore,
        ring_timeout_s: float,
        clock: Callable[[], float] = now,
        new_id: Callable[[], str] = new_call_id,
    ) -> None:
        self.store = store
        self.ring_timeout_s = ring_timeout_s
        self.clock = clock
        self.new_id = new_id
        self.live = LiveCalls(store.get)

    def table(self) -> Routes:
        return routes(
            command("initiate_call", self.initiate_call),
            command("accept_call", self.accept_call),
            command("reject_call", self.reject_call),
            command("end_call", self.end_call),
            command("call_signal", self.call_signal),
            command(LIST_CALLS, self.list_calls, wire.ListCalls),  # the gateway's HTTP API
            timer(RING_TIMEOUT, RingTimeout, self.ring_timeout),
            fact(USERS_OFFLINE, self.users_offline),
            fact(CONNECTIONS_CHANGED, self.connections_changed),
        )

    # -- shared steps ----------------------------------------------------------------------

    async def _load(self, call_id: str) -> Call:
        call = await self.store.get(call_id)
        if call is None:
            raise NotFound(f"no call {call_id}")
        return call

    async def _change(self, call_id: str, decide: Decide) -> Call:
        """Apply ``decide`` to the call as stored, and write it only if nobody changed the
        call meanwhile; otherwise decide again on what they wrote."""
        for _ in range(_ATTEMPTS):
            current = await self._load(call_id)
            changed = decide(current)
            if await self.store.transition(current, changed):
                self.live.remember(changed)
                return changed
        raise Conflict(f"call {call_id} is changing too fast; try again")

    async def _party_action(self, req: Request, call_id: str, decide: Decide) -> None:
        try:
            call = await self._change(call_id, decide)
        except Conflict:
            current = await self.store.get(call_id)
            if not (
                req.redelivered
                and current is not None
                and domain.already_done(current, req.event, req.sender.user_id)
            ):
                raise
            call = current  # our first run committed it: publish its effects again
        announce(req.out, call)
        req.out.reply = views.state_ack(call)

    def _schedule_timeout(self, out: Outbox, call: Call) -> None:
        remaining = call.expires_at - self.clock()
        if remaining >= self.ring_timeout_s - 0.001:
            delay = self.ring_timeout_s
        else:  # re-arming after a redelivery: whole seconds, so few delay queues exist
            delay = float(max(1, math.ceil(remaining)))
        out.schedule(RING_TIMEOUT, RingTimeout(call_id=call.call_id).model_dump(), delay)

    # -- client events ---------------------------------------------------------------------

    async def initiate_call(self, req: Request) -> None:
        p = req.payload_as(wire.InitiateCall)
        me = req.sender
        now = self.clock()
        connection = req.origin.connection_id if req.origin else None
        call = None
        if req.redelivered and connection is not None:
            call = await self.store.placed_from(
                me.user_id, p.receiver_id, connection, since=now - self.ring_timeout_s
            )
        if call is None:
            call = domain.start_call(
                self.new_id(),
                Caller(me.user_id, me.name, me.role.value),
                p.receiver_id,
                p.call_type,
                p.call_data,
                now,
                self.ring_timeout_s,
                connection,
            )
            if not await self.store.place(call):
                call = domain.reject_by_system(call, RejectReason.BUSY, now)
                await self.store.record(call)
        if call.state is CallState.RINGING:
            # Committed first, so whoever sees the push can act on the call at once.
            ringing = views.initiated(call)
            try:
                delivered = await req.deliver_now(UserPush(call.receiver_id, ringing.frame))
            except Exception:
                # No timer is armed yet: a call left ringing would hold both lines forever.
                await self.store.discard(call)
                raise
            if delivered:
                log.info("call %s ringing", call.call_id)
                self._schedule_timeout(req.out, call)
            else:
                call = await self._reject_offline(call)
        if call.state is CallState.REJECTED and call.rejected_by is None:
            announce(req.out, call)  # busy or offline: the system said no
        req.out.reply = views.initiate_ack(call)

    async def _reject_offline(self, call: Call) -> Call:
        offline = domain.reject_by_system(call, RejectReason.OFFLINE, self.clock())
        if await self.store.transition(call, offline):
            return offline
        # The receiver connected just now and answered through the catch-up push.
        return await self._load(call.call_id)

    async def accept_call(self, req: Request) -> None:
        p = req.payload_as(wire.AcceptCall)
        me = req.sender
        await self._party_action(
            req,
            p.call_id,
            lambda call: domain.accept(call, me.user_id, me.name, self.clock(), p.call_data),
        )

    async def reject_call(self, req: Request) -> None:
        p = req.payload_as(wire.RejectCall)
        me = req.sender
        await self._party_action(
            req,
            p.call_id,
            lambda call: domain.reject(call, me.user_id, me.name, self.clock(), p.reason),
        )

    async def end_call(self, req: Request) -> None:
        p = req.payload_as(wire.EndCall)
        me = req.sender
        await self._party_action(
            req, p.call_id, lambda call: domain.hang_up(call, me.user_id, self.clock())
        )

    async def call_signal(self, req: Request) -> None:
        p = req.payload_as(wire.CallSignal)
        me = req.sender
        call = await self.live.get(p.call_id)
        if call is None:
            raise NotFound(f"no call {p.call_id}")
        peer = domain.signal_target(call, me.user_id)
        req.out.push_user(peer, views.signal(call, me.user_id, p.signal))
        req.out.reply = {}

    async def list_calls(self, req: Request) -> None:
        me = req.sender
        p = req.payload_as(wire.ListCalls)
        before = None
        if p.before is not None:
            try:
                before = datetime.fromisoformat(p.before).timestamp()
            except ValueError:
                raise InvalidPayload("before: not an ISO 8601 time") from None
        calls = await self.store.history(me.user_id, p.limit, before)
        req.out.reply = views.history(calls, me.user_id)

    # -- timers and facts ------------------------------------------------------------------

    async def ring_timeout(self, req: Request) -> None:
        call_id = req.payload_as(RingTimeout).call_id
        try:
            call = await self._change(call_id, lambda c: domain.time_out(c, self.clock()))
        except (Conflict, NotFound):
            current = await self.store.get(call_id)
            if req.redelivered and current is not None and current.state is CallState.MISSED:
                announce(req.out, current)  # our first run committed it
            return  # otherwise answered, rejected or cancelled in time: nothing to do
        announce(req.out, call)

    async def users_offline(self, req: Request) -> None:
        """Users gone past the reconnect grace (thousands when a gateway restarts): the calls
        that held their line end; one query finds them all."""
        gone = [user.user_id for user in req.payload_as(UsersPresenceFact).users]
        if req.redelivered:  # what our first run ended may not have been announced
            for user_id in gone:
                for call in await self.store.history(user_id, 5):
                    if domain.ended_by_system(call, self.clock() - REANNOUNCE_WINDOW_S):
                        announce(req.out, call)
        active = await self.store.active_calls_of_users(gone)
        for user_id in gone:
            for held in active.get(user_id, ()):
                drop = self._dropping(user_id)
                try:
                    call = await self._change(held.call_id, drop)
                except (Conflict, NotFound):
                    continue  # it ended meanwhile (or with the other party, earlier here)
                announce(req.out, call)

    def _dropping(self, user_id: str) -> Callable[[Call], Call]:
        return lambda call: domain.drop_party(call, user_id, self.clock())

    async def connections_changed(self, req: Request) -> None:
        """Catch-up: a party who (re)connects while a call rings sees it ring (one query for
        a gateway's whole batch of connections)."""
        # resumed: re-announced after a broker reconnect, the client saw it all
        opened = [f for f in req.payload_as(ConnectionsChanged).opened if not f.resumed]
        if not opened:
            return
        calls = await self.store.active_calls_of_users({f.user_id for f in opened})
        now = self.clock()
        for opening in opened:
            origin = CommandOrigin(
                gateway_id=opening.gateway_id,
                connection_id=opening.connection_id,
                reply_to=opening.reply_to,
            )
            for call in calls.get(opening.user_id, ()):
                if call.rings_at(now):
                    req.out.push_connection(origin, views.initiated(call))
