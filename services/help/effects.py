"""What help's handlers publish beyond their outbox, and the expiry timer they arm.

Pushes that must be counted (``delivered_to``) or kept in order (catch-up, most urgent first)
are published from the handler with ``deliver_now`` after the commit; a push the broker did
not take makes the command fail, so that its redelivery (which finds the decision stored)
publishes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel

from services.help import views
from shared.errors import RealtimeError
from shared.protocol.help import CloseReason
from shared.runtime.outbox import Outbox, Push, Request

EXPIRY_TIMER = "help_expired"


class HelpExpired(BaseModel):
    """The ``help_expired`` timer, armed when a request is created."""

    request_id: str


class RetryLater(Exception):
    """A push could not be published after the commit; the runtime redelivers the command and
    the handler, finding its decision stored, publishes again (not a user-facing error)."""


async def deliver(req: Request, pushes: Sequence[Push]) -> int:
    """Publish at once, concurrently; how many reached a connected user."""
    try:
        results = await asyncio.gather(*(req.deliver_now(p) for p in pushes))
    except RealtimeError as exc:
        raise RetryLater(f"pushes of {req.event} not published: {exc.message}") from exc
    return sum(results)


async def deliver_in_order(req: Request, pushes: Sequence[Push]) -> None:
    """Publish one after the other (each confirmed) so the client sees them in this order."""
    try:
        for push in pushes:
            await req.deliver_now(push)
    except RealtimeError as exc:
        raise RetryLater(f"pushes of {req.event} not published: {exc.message}") from exc


def notify_closed(
    out: Outbox, request_id: str, mentors: Sequence[str], reason: CloseReason
) -> None:
    """Tell the mentors who were shown a request that it is closed."""
    for mentor_id in mentors:
        out.push_user(mentor_id, views.closed(request_id, reason))


def arm_expiry(out: Outbox, request_id: str, delay_s: float) -> None:
    out.schedule(EXPIRY_TIMER, HelpExpired(request_id=request_id).model_dump(), delay_s)
