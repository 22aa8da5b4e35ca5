"""One async function per client event: Request → domain → store → effects.

Idempotent under redelivery: a decision is taken once in the store (conditional UPDATE), and
a redelivered command whose decision is already stored repeats its pushes instead of
deciding again. Pushes that must be counted (``delivered_to``) or kept in order (catch-up,
most urgent first) are published from the handler with ``deliver_now`` after the commit;
the rest go through ``req.out`` and leave after the handler returned.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

from services.help.domain import (
    Action,
    HelpRequest,
    Status,
    check_mentor_party,
    check_student_owner,
    close_recipients,
    new_request,
)
from services.help.store import HelpStore
from shared.auth import Role
from shared.clock import iso, now
from shared.errors import Conflict, NotFound, RealtimeError
from shared.protocol.envelope import fit, push_frame
from shared.protocol.help import (
    HELP_REQUEST_ACCEPTED,
    HELP_REQUEST_CLOSED,
    HELP_REQUEST_DECLINED,
    HELP_REQUEST_RECEIVED,
    DeclineHelpRequest,
    HelpRequestRef,
    StudentRequestHelp,
)
from shared.runtime.outbox import Push, Request, UserPush

EXPIRY_TIMER = "help_expired"
DUPLICATE_WINDOW_S = 60.0  # an identical request within this window is a double tap: the same
STUDENT_LIST_LIMIT = 50


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


def received(request: HelpRequest) -> dict[str, object]:
    return push_frame(HELP_REQUEST_RECEIVED, request.view())


def notify_closed(req: Request, request_id: str, mentors: Sequence[str], reason: str) -> None:
    for mentor_id in mentors:
        req.out.push_user(
            mentor_id, HELP_REQUEST_CLOSED, {"request_id": request_id, "reason": reason}
        )


class HelpHandlers:
    """The client commands. ``store`` is attached at startup."""

    def __init__(
        self,
        expiry_s: float,
        clock: Callable[[], float] = now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        max_open: int = 5,
        catchup_limit: int = 100,
        repush_after_s: float = 60.0,
    ) -> None:
        self.expiry_s = expiry_s
        self.max_open = max_open  # open requests a student may have at once
        self.catchup_limit = catchup_limit  # requests pushed to a mentor at once, at most
        self.repush_after_s = repush_after_s  # a request shown to a mentor is not re-pushed
        # to them by a status flip within this
        self.clock = clock
        self.new_id = new_id
        self._store: HelpStore | None = None

    @property
    def store(self) -> HelpStore:
        if self._store is None:
            raise RuntimeError("help store not opened yet")
        return self._store

    def attach(self, store: HelpStore) -> None:
        self._store = store

    async def _current(self, request_id: str) -> HelpRequest:
        current = await self.store.get(request_id)
        if current is None:  # requests are never deleted
            raise NotFound(f"no help request {request_id!r}")
        return current

    def arm_expiry(self, req: Request, request_id: str, delay_s: float) -> None:
        req.out.schedule(EXPIRY_TIMER, {"request_id": request_id}, delay_s)

    # -- student_request_help ---------------------------------------------------------------

    async def student_request_help(self, req: Request) -> None:
        p = req.payload_as(StudentRequestHelp)
        at = self.clock()
        # The gateway's command id names the request: a redelivered command finds it again.
        request = new_request(p, req.sender, req.command_id or self.new_id(), at, self.expiry_s)
        if request.mentor_id is not None and await self.store.mentor(request.mentor_id) is None:
            raise NotFound(f"no mentor {request.mentor_id!r}")
        same = await self.store.get(request.request_id) or await self.store.find_duplicate(
            request, since=at - DUPLICATE_WINDOW_S, any_status=req.redelivered
        )
        if same is None:
            if await self.store.open_count(request.student_id) >= self.max_open:
                raise Conflict(
                    f"you already have {self.max_open} open help requests: cancel one, or wait "
                    "until a mentor answers"
                )
            target = [] if request.mentor_id is None else [request.mentor_id]
            audience = await self.store.create(request, target)
            delivered = await deliver(req, [UserPush(m, received(request)) for m in audience])
            self.arm_expiry(req, request.request_id, self.expiry_s)
        else:
            # The same command again (redelivered, or sent twice): the same request.
            request = same
            audience = await self.store.shown_to(request.request_id)
            if req.redelivered and request.is_open:
                delivered = await deliver(req, [UserPush(m, received(request)) for m in audience])
                self.arm_expiry(req, request.request_id, max(0.0, request.expires_at - at))
            else:
                delivered = len(audience)
        req.out.reply = {
            "request_id": request.request_id,
            "status": request.status.value,
            "delivered_to": delivered,
            "expires_at": iso(request.expires_at),
        }

    # -- accept_help_request ----------------------------------------------------------------

    async def accept_help_request(self, req: Request) -> None:
        p = req.payload_as(HelpRequestRef)
        mentor = req.sender
        request = check_mentor_party(await self.store.get(p.request_id), mentor, p.request_id)
        won, shown = False, list[str]()
        if request.is_open:
            won, shown = await self.store.finish(request.moved(Action.ACCEPT, self.clock(), mentor))
        if not won:
            current = await self._current(p.request_id)
            mine = current.status is Status.ACCEPTED and current.closed_by == mentor.user_id
            if not (mine and req.redelivered):
                raise Conflict(f"help request is already {current.status.value}")
            shown = await self.store.shown_to(p.request_id)
        req.out.push_user(
            request.student_id,
            HELP_REQUEST_ACCEPTED,
            {"request_id": p.request_id, "mentor_id": mentor.user_id, "mentor_name": mentor.name},
        )
        notify_closed(req, p.request_id, close_recipients(shown, mentor.user_id), "accepted")
        req.out.reply = {"request_id": p.request_id, "status": Status.ACCEPTED.value}

    # -- decline_help_request ---------------------------------------------------------------

    async def decline_help_request(self, req: Request) -> None:
        p = req.payload_as(DeclineHelpRequest)
        mentor = req.sender
        request = check_mentor_party(await self.store.get(p.request_id), mentor, p.request_id)
        if request.is_broadcast:
            # Only this mentor stops seeing it; everyone else still may accept it.
            if not await self.store.decline_broadcast(p.request_id, mentor.user_id, self.clock()):
                current = await self._current(p.request_id)
                raise Conflict(f"help request is already {current.status.value}")
        else:
            won = False
            if request.is_open:
                after = request.moved(Action.DECLINE, self.clock(), mentor, p.reason)
                won, _ = await self.store.finish(after)
            current = await self._current(p.request_id)
            if current.status is not Status.DECLINED:
                raise Conflict(f"help request is already {current.status.value}")
            if won or req.redelivered:
                req.out.push_user(
                    current.student_id,
                    HELP_REQUEST_DECLINED,
                    {
                        "request_id": p.request_id,
                        "mentor_id": mentor.user_id,
                        "reason": current.decline_reason,
                    },
                )
        req.out.reply = {"request_id": p.request_id}

    # -- cancel_help_request ----------------------------------------------------------------

    async def cancel_help_request(self, req: Request) -> None:
        p = req.payload_as(HelpRequestRef)
        student = req.sender
        request = check_student_owner(await self.store.get(p.request_id), student, p.request_id)
        won, shown = False, list[str]()
        if request.is_open:
            after = request.moved(Action.CANCEL, self.clock(), student)
            won, shown = await self.store.finish(after)
        if not won:
            current = await self._current(p.request_id)
            if current.status is not Status.CANCELLED:
                raise Conflict(f"help request is already {current.status.value}")
            if req.redelivered:
                shown = await self.store.shown_to(p.request_id)
        notify_closed(req, p.request_id, close_recipients(shown, None), "cancelled")
        req.out.reply = {"request_id": p.request_id, "status": Status.CANCELLED.value}

    # -- list_help_requests -----------------------------------------------------------------

    async def list_help_requests(self, req: Request) -> None:
        user = req.sender
        if user.role is Role.MENTOR:
            requests = await self.store.visible_to(user.user_id)
        else:
            requests = await self.store.of_student(user.user_id, STUDENT_LIST_LIMIT)
        # most urgent (mentor) or newest (student) first, as many as fit in one frame
        req.out.reply = {"requests": fit([r.view() for r in requests])}
