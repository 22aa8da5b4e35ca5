"""What help does on facts from other processes and on its own timers (no user behind them).

* ``presence.mentor_status_changed`` keeps the mentor view; a mentor who turns online and
  ``available`` is pushed the open broadcasts, most urgent first, then oldest.
* ``gateway.connections_changed``: each new connection of a mentor (not ``resumed``) is
  pushed the open requests targeted at them and, when available, the open broadcasts.
* ``help_expired`` (the durable timer armed at creation) expires a request still open.

The runner has validated each fact and timer with its model (a malformed one never gets here).
"""

from __future__ import annotations

from collections.abc import Callable

from services.help import views
from services.help.domain import (
    Action,
    MentorState,
    Status,
    became_available,
    close_recipients,
    rearm_delay,
)
from services.help.effects import HelpExpired, arm_expiry, deliver_in_order, notify_closed
from services.help.store import HelpStore
from shared.protocol.domain import ConnectionFact, ConnectionsChanged
from shared.protocol.presence import MentorStatusView
from shared.runtime.outbox import ConnectionPush, Request, UserPush


class HelpReactions:
    def __init__(
        self,
        store: HelpStore,
        clock: Callable[[], float],
        catchup_limit: int = 100,
        repush_after_s: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.catchup_limit = catchup_limit  # requests pushed to a mentor at once, at most
        self.repush_after_s = repush_after_s  # a request shown to a mentor is not re-pushed
        # to them by a status flip within this

    async def mentor_status_changed(self, req: Request) -> None:
        new = MentorState.from_view(req.payload_as(MentorStatusView))
        old, applied = await self.store.apply_mentor(new)
        if not applied:
            return
        # A redelivered fact may have been stored without its pushes leaving: push again.
        # A mentor flipping back and forth gets again only what they were not shown lately
        # (their connections have the rest; list_help_requests lists everything).
        if became_available(old, new) or (req.redelivered and new.available):
            now = self.clock()
            requests = await self.store.catch_up(
                new.mentor_id,
                broadcasts=True,
                targeted=False,
                now=now,
                limit=self.catchup_limit,
                not_shown_since=None if req.redelivered else now - self.repush_after_s,
            )
            pushes = [UserPush(new.mentor_id, views.received(r).frame) for r in requests]
            await deliver_in_order(req, pushes)

    async def connections_changed(self, req: Request) -> None:
        """Catch-up of each mentor's new connection: the open requests they may take."""
        # resumed: re-announced after a broker reconnect, caught up already
        opened = [f for f in req.payload_as(ConnectionsChanged).opened if not f.resumed]
        for opening in opened:
            if opening.role == "mentor":
                await self._catch_up(req, opening)

    async def _catch_up(self, req: Request, opening: ConnectionFact) -> None:
        state = await self.store.mentor(opening.user_id)
        requests = await self.store.catch_up(
            opening.user_id,
            broadcasts=state is not None and state.available,
            targeted=True,
            now=self.clock(),
            limit=self.catchup_limit,
        )
        to = opening.reply_to, opening.connection_id
        pushes = [ConnectionPush(*to, views.received(r).frame) for r in requests]
        await deliver_in_order(req, pushes)

    async def help_expired(self, req: Request) -> None:
        request_id = req.payload_as(HelpExpired).request_id
        request = await self.store.get(request_id)
        if request is None:
            return
        at = self.clock()
        if request.is_open and at < request.expires_at:
            # Fired early (re-armed after a redelivery): wait for the rest.
            arm_expiry(req.out, request_id, rearm_delay(request.expires_at - at))
            return
        won, shown = False, list[str]()
        if request.is_open:
            won, shown = await self.store.finish(request.moved(Action.EXPIRE, at))
        if not won:
            current = await self.store.get(request_id)
            if current is None or current.status is not Status.EXPIRED or not req.redelivered:
                return  # accepted/cancelled/declined first, or expired and already told
            shown = await self.store.shown_to(request_id)
        req.out.push_user(request.student_id, views.expired(request_id))
        notify_closed(req.out, request_id, close_recipients(shown, None), "expired")
