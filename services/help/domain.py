"""The rules of help requests: states, who sees a request, in which order. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.auth import Identity
from shared.errors import Conflict, InvalidPayload, NotFound
from shared.protocol.help import BROADCAST, StudentRequestHelp
from shared.protocol.presence import MentorStatusView


class Urgency(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return _URGENCY_RANK[self]


_URGENCY_RANK = {Urgency.LOW: 0, Urgency.MEDIUM: 1, Urgency.HIGH: 2}


class Status(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"  # a targeted request its mentor declined
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"  # only a targeted request changes state on decline
    CANCEL = "cancel"
    EXPIRE = "expire"


# The whole state machine: only an open request moves, and each move ends it.
TRANSITIONS: dict[Status, dict[Action, Status]] = {
    Status.OPEN: {
        Action.ACCEPT: Status.ACCEPTED,
        Action.DECLINE: Status.DECLINED,
        Action.CANCEL: Status.CANCELLED,
        Action.EXPIRE: Status.EXPIRED,
    },
}


def next_status(current: Status, action: Action) -> Status:
    """The state after ``action``; :class:`Conflict` when the request is no longer open."""
    try:
        return TRANSITIONS[current][action]
    except KeyError:
        raise Conflict(f"help request is already {current.value}") from None


@dataclass(frozen=True, slots=True)
class HelpRequest:
    request_id: str
    student_id: str
    student_name: str
    subject: str
    message: str
    urgency: Urgency
    mentor_id: str | None  # None: broadcast to every available mentor
    status: Status
    created_at: float
    expires_at: float
    closed_at: float | None = None
    closed_by: str | None = None  # the mentor who accepted/declined
    closed_by_name: str | None = None
    decline_reason: str | None = None

    @property
    def is_broadcast(self) -> bool:
        return self.mentor_id is None

    @property
    def is_open(self) -> bool:
        return self.status is Status.OPEN

    def moved(
        self, action: Action, at: float, by: Identity | None = None, reason: str | None = None
    ) -> HelpRequest:
        """This request after ``action`` (an open request only; see :data:`TRANSITIONS`)."""
        if action is Action.DECLINE and self.is_broadcast:
            raise ValueError("declining a broadcast hides it from one mentor; it stays open")
        return replace(
            self,
            status=next_status(self.status, action),
            closed_at=at,
            closed_by=by.user_id if by else None,
            closed_by_name=by.name if by else None,
            decline_reason=reason if action is Action.DECLINE else None,
        )


def new_request(
    payload: StudentRequestHelp, student: Identity, request_id: str, now: float, expiry_s: float
) -> HelpRequest:
    """A fresh open request; blank subject or message → :class:`InvalidPayload`."""
    for field_name in ("subject", "message"):
        if not getattr(payload, field_name).strip():
            raise InvalidPayload(f"{field_name}: must not be blank")
    return HelpRequest(
        request_id=request_id,
        student_id=student.user_id,
        student_name=student.name,
        subject=payload.subject,
        message=payload.message,
        urgency=Urgency(payload.urgency),
        mentor_id=None if payload.mentor_id == BROADCAST else payload.mentor_id,
        status=Status.OPEN,
        created_at=now,
        expires_at=now + expiry_s,
    )


def check_open_limit(open_now: int, max_open: int) -> None:
    """A student may have at most ``max_open`` open requests: :class:`Conflict` beyond."""
    if open_now >= max_open:
        raise Conflict(
            f"you already have {max_open} open help requests: cancel one, or wait until a "
            "mentor answers"
        )


def priority(request: HelpRequest) -> tuple[int, float, str]:
    """Sort key: most urgent first, then oldest, then by id (stable)."""
    return (-request.urgency.rank, request.created_at, request.request_id)


def by_priority(requests: Iterable[HelpRequest]) -> list[HelpRequest]:
    return sorted(requests, key=priority)


# -- who may do what ----------------------------------------------------------------------


def concerns_mentor(request: HelpRequest, mentor_id: str) -> bool:
    """A mentor may act on a broadcast or on a request targeted at them; for anyone else a
    targeted request does not exist (``not_found``, as for a call they are no party to)."""
    return request.mentor_id is None or request.mentor_id == mentor_id


def check_mentor_party(
    request: HelpRequest | None, mentor: Identity, request_id: str
) -> HelpRequest:
    if request is None or not concerns_mentor(request, mentor.user_id):
        raise NotFound(f"no help request {request_id!r}")
    return request


def check_student_owner(
    request: HelpRequest | None, student: Identity, request_id: str
) -> HelpRequest:
    if request is None or request.student_id != student.user_id:
        raise NotFound(f"no help request {request_id!r} of yours")
    return request


def visible_to_mentor(request: HelpRequest, mentor_id: str, declined: bool) -> bool:
    """Open, and targeted at this mentor or a broadcast they have not declined."""
    if not request.is_open:
        return False
    if request.mentor_id is not None:
        return request.mentor_id == mentor_id
    return not declined


def close_recipients(shown_to: Iterable[str], actor: str | None) -> list[str]:
    """Every mentor who was shown the request, except the one who closed it."""
    return sorted({m for m in shown_to if m != actor})


# -- the mentor view kept from presence facts ---------------------------------------------


@dataclass(frozen=True, slots=True)
class MentorState:
    mentor_id: str
    name: str
    status: str
    online: bool
    updated_at: str

    @property
    def available(self) -> bool:
        """Gets broadcasts pushed: online and ``available``."""
        return self.online and self.status == "available"

    @classmethod
    def from_view(cls, view: MentorStatusView) -> MentorState:
        return cls(view.mentor_id, view.name, view.status, view.online, view.updated_at)


def supersedes(old: MentorState | None, new: MentorState) -> bool:
    """Apply ``new`` unless the view already holds a later change (facts may be reordered
    between replicas). ``updated_at`` is ISO 8601 UTC, so strings order like times."""
    return old is None or new.updated_at >= old.updated_at


def became_available(old: MentorState | None, new: MentorState) -> bool:
    return new.available and (old is None or not old.available)


# -- expiry timers ---------------------------------------------------------------------------

# Durations a re-armed expiry timer may use. The runtime keeps one delay queue per distinct
# duration, so a timer re-armed for "the time left" uses the longest step that does not
# overshoot, and hops again; it never fires before ``expires_at`` and at most
# MIN_TIMER_STEP_S after it.
MIN_TIMER_STEP_S = 0.25
TIMER_STEPS_S = tuple(MIN_TIMER_STEP_S * 2**i for i in range(13))  # 0.25 s … 1024 s


def rearm_delay(remaining_s: float) -> float:
    """The delay of a timer re-armed for an expiry ``remaining_s`` away."""
    fitting = [step for step in TIMER_STEPS_S if step <= remaining_s]
    return fitting[-1] if fitting else MIN_TIMER_STEP_S
