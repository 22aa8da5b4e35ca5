"""What help does on facts from other processes and on its own timers (no user behind them).

* ``presence.mentor_status_changed`` keeps the mentor view; a mentor who turns online and
  ``available`` is pushed the open broadcasts, most urgent first, then oldest.
* ``gateway.connection_opened`` of a mentor (not ``resumed``): that connection is pushed the
  open requests targeted at them and, when available, the open broadcasts.
* ``help_expired`` (the durable timer armed at creation) expires a request still open.

A fact that does not parse is logged and dropped: retrying it could never succeed.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from services.help.domain import (
    Action,
    MentorState,
    Status,
    became_available,
    close_recipients,
    rearm_delay,
)
from services.help.handlers import HelpHandlers, deliver_in_order, notify_closed, received
from shared.protocol.domain import ConnectionFact, ConnectionsChanged
from shared.protocol.help import HELP_REQUEST_EXPIRED
from shared.protocol.presence import MentorStatusView
from shared.runtime.outbox import ConnectionPush, Request, UserPush

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def _parse(req: Request, model: type[M]) -> M | None:
    try:
        return model.model_validate(req.data)
    except ValidationError as exc:
        log.warning("dropping malformed %s: %s", req.event, exc.errors(include_url=False)[:3])
        return None


class HelpReactions:
    def __init__(self, handlers: HelpHandlers) -> None:
        self.h = handlers

    async def mentor_status_changed(self, req: Request) -> None:
        view = _parse(req, MentorStatusView)
        if view is None:
            return
        new = MentorState.from_view(view)
        old, applied = await self.h.store.apply_mentor(new)
        if not applied:
            return
        # A redelivered fact may have been stored without its pushes leaving: push again.
        # A mentor flipping back and forth gets again only what they were not shown lately
        # (their connections have the rest; list_help_requests lists everything).
        if became_available(old, new) or (req.redelivered and new.available):
            now = self.h.clock()
            requests = await self.h.store.catch_up(
                new.mentor_id,
                broadcasts=True,
                targeted=False,
                now=now,
                limit=self.h.catchup_limit,
                not_shown_since=None if req.redelivered else now - self.h.repush_after_s,
            )
            await deliver_in_order(req, [UserPush(new.mentor_id, received(r)) for r in requests])

    async def connections_changed(self, req: Request) -> None:
        """Catch-up of each mentor's new connection: the open requests they may take."""
        batch = _parse(req, ConnectionsChanged)
        # resumed: re-announced after a broker reconnect, caught up already
        opened = [] if batch is None else [f for f in batch.opened if not f.resumed]
        for fact in opened:
            if fact.role == "mentor":
                await self._catch_up(req, fact)

    async def _catch_up(self, req: Request, fact: ConnectionFact) -> None:
        state = await self.h.store.mentor(fact.user_id)
        requests = await self.h.store.catch_up(
            fact.user_id,
            broadcasts=state is not None and state.available,
            targeted=True,
            now=self.h.clock(),
            limit=self.h.catchup_limit,
        )
        await deliver_in_order(
            req,
            [ConnectionPush(fact.reply_to, fact.connection_id, received(r)) for r in requests],
        )

    async def help_expired(self, req: Request) -> None:
        request_id = req.data.get("request_id")
        if not isinstance(request_id, str):
            log.warning("dropping help_expired without a request_id: %r", req.data)
            return
        request = await self.h.store.get(request_id)
        if request is None:
            return
        at = self.h.clock()
        if request.is_open and at < request.expires_at:
            # Fired early (re-armed after a redelivery): wait for the rest.
            self.h.arm_expiry(req, request_id, rearm_delay(request.expires_at - at))
            return
        won, shown = False, list[str]()
        if request.is_open:
            won, shown = await self.h.store.finish(request.moved(Action.EXPIRE, at))
        if not won:
            current = await self.h.store.get(request_id)
            if current is None or current.status is not Status.EXPIRED or not req.redelivered:
                return  # accepted/cancelled/declined first, or expired and already told
            shown = await self.h.store.shown_to(request_id)
        req.out.push_user(request.student_id, HELP_REQUEST_EXPIRED, {"request_id": request_id})
        notify_closed(req, request_id, close_recipients(shown, None), "expired")
