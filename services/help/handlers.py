"""One async function per client event: Request → domain → store → effects; the table of
everything help takes (its reactions to facts and timers are in ``reactions.py``).

Idempotent under redelivery: a decision is taken once in the store (conditional UPDATE), and
a redelivered command whose decision is already stored repeats its pushes instead of
deciding again (see ``effects.py`` for the pushes published from inside a handler).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from services.help import views
from services.help.domain import (
    Action,
    HelpRequest,
    Status,
    check_mentor_party,
    check_student_owner,
    close_recipients,
    new_request,
)
from services.help.effects import (
    EXPIRY_TIMER,
    HelpExpired,
    arm_expiry,
    deliver,
    notify_closed,
)
from services.help.reactions import HelpReactions
from services.help.store import HelpStore
from shared.auth import Role
from shared.clock import now
from shared.errors import Conflict, NotFound
from shared.protocol.domain import CONNECTIONS_CHANGED, MENTOR_STATUS_CHANGED
from shared.protocol.help import (
    DeclineHelpRequest,
    HelpRequestRef,
    StudentRequestHelp,
)
from shared.runtime.outbox import Request, UserPush
from shared.runtime.routes import Routes, command, fact, routes, timer

DUPLICATE_WINDOW_S = 60.0  # an identical request within this window is a double tap: the same
STUDENT_LIST_LIMIT = 50


def new_request_id() -> str:
    return uuid.uuid4().hex


class HelpHandlers:
    def __init__(
        self,
        store: HelpStore,
        expiry_s: float,
        clock: Callable[[], float] = now,
        new_id: Callable[[], str] = new_request_id,
        max_open: int = 5,
        catchup_limit: int = 100,
        repush_after_s: float = 60.0,
    ) -> None:
        self.store = store
        self.expiry_s = expiry_s
        self.max_open = max_open  # open requests a student may have at once
        self.clock = clock
        self.new_id = new_id
        self.reactions = HelpReactions(store, clock, catchup_limit, repush_after_s)

    def table(self) -> Routes:
        return routes(
            command("student_request_help", self.student_request_help),
            command("accept_help_request", self.accept_help_request),
            command("decline_help_request", self.decline_help_request),
            command("cancel_help_request", self.cancel_help_request),
            command("list_help_requests", self.list_help_requests),
            fact(MENTOR_STATUS_CHANGED, self.reactions.mentor_status_changed),
            fact(CONNECTIONS_CHANGED, self.reactions.connections_changed),
            timer(EXPIRY_TIMER, HelpExpired, self.reactions.help_expired),
        )

    async def _current(self, request_id: str) -> HelpRequest:
        current = await self.store.get(request_id)
        if current is None:  # requests are never deleted
            raise NotFound(f"no help request {request_id!r}")
        return current

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
        if same is None:  # checked again where it is stored, with the cap: replicas race
            target = [] if request.mentor_id is None else [request.mentor_id]
            stored, shown = await self.store.admit_request(
                request, target, self.max_open, duplicate_since=at - DUPLICATE_WINDOW_S
            )
            if shown is None:  # another replica stored the same request a moment ago
                same = stored
            else:
                delivered = await self._show(req, request, shown)
                arm_expiry(req.out, request.request_id, self.expiry_s)
        if same is not None:
            # The same command again (redelivered, or sent twice): the same request.
            request = same
            audience = await self.store.shown_to(request.request_id)
            if req.redelivered and request.is_open:
                delivered = await self._show(req, request, audience)
                arm_expiry(req.out, request.request_id, max(0.0, request.expires_at - at))
            else:
                delivered = len(audience)
        req.out.reply = views.created_ack(request, delivered)

    @staticmethod
    async def _show(req: Request, request: HelpRequest, audience: list[str]) -> int:
        """Push a new request to its audience; how many of them are connected."""
        shown = views.received(request).frame
        return await deliver(req, [UserPush(m, shown) for m in audience])

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
        accepted = views.accepted(p.request_id, mentor)
        req.out.push_user(request.student_id, accepted)
        recipients = close_recipients(shown, mentor.user_id)
        notify_closed(req.out, p.request_id, recipients, "accepted")
        req.out.reply = views.status_ack(p.request_id, Status.ACCEPTED.value)

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
                declined = views.declined(p.request_id, mentor.user_id, current.decline_reason)
                req.out.push_user(current.student_id, declined)
        req.out.reply = views.declined_ack(p.request_id)

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
        notify_closed(req.out, p.request_id, close_recipients(shown, None), "cancelled")
        req.out.reply = views.status_ack(p.request_id, Status.CANCELLED.value)

    # -- list_help_requests -----------------------------------------------------------------

    async def list_help_requests(self, req: Request) -> None:
        user = req.sender
        if user.role is Role.MENTOR:
            requests = await self.store.visible_to(user.user_id)
        else:
            requests = await self.store.of_student(user.user_id, STUDENT_LIST_LIMIT)
        # most urgent (mentor) or newest (student) first, as many as fit in one frame
        req.out.reply = views.request_list(requests)
