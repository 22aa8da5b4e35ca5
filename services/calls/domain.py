"""The call state machine (PROTOCOL §3) as pure code: no I/O, no asyncio, no clock.

A :class:`Call` is an immutable snapshot. Every operation takes a call, who acts and the time,
and returns the next snapshot, or raises:

* :class:`NotFound` — the user is not a party of the call (a stranger must not learn that the
  call exists);
* :class:`Forbidden` — a party, but not the one allowed to do this (the caller accepting);
* :class:`IllegalTransition` (a :class:`Conflict`) — the call is not in a state that allows it.

Who wins a race (accept vs. timeout, two devices accepting) is not decided here but by the
store, which only writes a transition if the call is still in the state it was read in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from shared.errors import Conflict, Forbidden, InvalidPayload, NotFound


class CallState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    MISSED = "missed"
    ENDED = "ended"

    @property
    def active(self) -> bool:
        """Ringing or accepted: the parties' lines are taken."""
        return self in (CallState.RINGING, CallState.ACCEPTED)


NEXT_STATES: dict[CallState, frozenset[CallState]] = {
    CallState.RINGING: frozenset(
        {CallState.ACCEPTED, CallState.REJECTED, CallState.MISSED, CallState.ENDED}
    ),
    CallState.ACCEPTED: frozenset({CallState.ENDED}),
    CallState.REJECTED: frozenset(),
    CallState.MISSED: frozenset(),
    CallState.ENDED: frozenset(),
}


class RejectReason(StrEnum):
    """Why the system rejected a call (a person's reason is their own free text)."""

    OFFLINE = "offline"
    BUSY = "busy"


class EndReason(StrEnum):
    CANCELLED = "cancelled"
    HANGUP = "hangup"
    CONNECTION_LOST = "connection_lost"


class IllegalTransition(Conflict):
    """The call's state does not allow this move."""


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    caller_id: str
    caller_name: str
    caller_role: str
    receiver_id: str
    call_type: str
    call_data: dict[str, Any] | None
    created_at: float
    expires_at: float
    state: CallState = CallState.RINGING
    receiver_name: str | None = None
    accepted_by: str | None = None
    accepted_at: float | None = None
    accept_data: dict[str, Any] | None = None
    rejected_by: str | None = None
    ended_by: str | None = None
    ended_at: float | None = None
    reason: str | None = None
    origin_connection: str | None = None

    def is_party(self, user_id: str) -> bool:
        return user_id in (self.caller_id, self.receiver_id)

    def peer_of(self, user_id: str) -> str:
        return self.receiver_id if user_id == self.caller_id else self.caller_id

    @property
    def parties(self) -> tuple[str, str]:
        return (self.caller_id, self.receiver_id)

    @property
    def duration_s(self) -> float:
        """Talk time: from acceptance to the end; 0 for a call that was never accepted."""
        if self.accepted_at is None or self.ended_at is None:
            return 0.0
        return round(max(0.0, self.ended_at - self.accepted_at), 3)

    def rings_at(self, now: float) -> bool:
        """Still ringing and not yet past its ring timeout."""
        return self.state is CallState.RINGING and now < self.expires_at

    def move(self, state: CallState, **changes: Any) -> Call:
        if state not in NEXT_STATES[self.state]:
            raise IllegalTransition(
                f"call {self.call_id} is {self.state}, it cannot become {state}"
            )
        return replace(self, state=state, **changes)


# -- starting a call -------------------------------------------------------------------------


def start_call(
    call_id: str,
    caller: Caller,
    receiver_id: str,
    call_type: str,
    call_data: dict[str, Any] | None,
    now: float,
    ring_timeout_s: float,
    origin_connection: str | None = None,
) -> Call:
    if receiver_id == caller.user_id:
        raise InvalidPayload("receiver_id: you cannot call yourself")
    return Call(
        call_id=call_id,
        caller_id=caller.user_id,
        caller_name=caller.name,
        caller_role=caller.role,
        receiver_id=receiver_id,
        call_type=call_type,
        call_data=call_data,
        created_at=now,
        expires_at=now + ring_timeout_s,
        origin_connection=origin_connection,
    )


def reject_by_system(call: Call, reason: RejectReason, now: float) -> Call:
    """The receiver cannot be reached (offline) or a party is in another call (busy)."""
    return call.move(CallState.REJECTED, rejected_by=None, reason=reason.value, ended_at=now)


# -- what the parties do ---------------------------------------------------------------------


def _party(call: Call, user_id: str) -> None:
    if not call.is_party(user_id):
        raise NotFound(f"no call {call.call_id}")


def _receiver(call: Call, user_id: str, action: str) -> None:
    _party(call, user_id)
    if user_id != call.receiver_id:
        raise Forbidden(f"only the receiver may {action} a call")


def _ringing(call: Call, now: float, action: str) -> None:
    if call.state is not CallState.RINGING:
        raise IllegalTransition(f"cannot {action}: call {call.call_id} is {call.state}")
    if now >= call.expires_at:
        raise IllegalTransition(f"cannot {action}: call {call.call_id} was not answered in time")


def accept(
    call: Call, user_id: str, user_name: str, now: float, call_data: dict[str, Any] | None
) -> Call:
    _receiver(call, user_id, "accept")
    _ringing(call, now, "accept")
    return call.move(
        CallState.ACCEPTED,
        accepted_by=user_id,
        accepted_at=now,
        accept_data=call_data,
        receiver_name=user_name,
    )


def reject(call: Call, user_id: str, user_name: str, now: float, reason: str | None) -> Call:
    _receiver(call, user_id, "reject")
    _ringing(call, now, "reject")
    return call.move(
        CallState.REJECTED,
        rejected_by=user_id,
        reason=reason,
        ended_at=now,
        receiver_name=user_name,
    )


def hang_up(call: Call, user_id: str, now: float) -> Call:
    """``end_call``: while ringing it cancels the call, once accepted it ends it."""
    _party(call, user_id)
    if call.state is CallState.ACCEPTED:
        return call.move(
            CallState.ENDED, ended_by=user_id, ended_at=now, reason=EndReason.HANGUP.value
        )
    _ringing(call, now, "end")
    return call.move(
        CallState.ENDED, ended_by=user_id, ended_at=now, reason=EndReason.CANCELLED.value
    )


def signal_target(call: Call, user_id: str) -> str:
    """Who receives a ``call_signal`` from ``user_id``: the other party."""
    _party(call, user_id)
    if not call.state.active:
        raise IllegalTransition(f"cannot signal: call {call.call_id} is {call.state}")
    return call.peer_of(user_id)


# -- what the system does --------------------------------------------------------------------


def time_out(call: Call, now: float) -> Call:
    """Nobody answered within the ring timeout."""
    return call.move(CallState.MISSED, ended_at=now)


def drop_party(call: Call, user_id: str, now: float) -> Call:
    """``user_id`` has had no connection for the reconnect grace: an accepted call ends
    (connection lost), a ringing one is cancelled."""
    _party(call, user_id)
    if call.state is CallState.ACCEPTED:
        return call.move(
            CallState.ENDED, ended_by=None, ended_at=now, reason=EndReason.CONNECTION_LOST.value
        )
    return call.move(CallState.ENDED, ended_by=None, ended_at=now, reason=EndReason.CANCELLED.value)


def already_done(call: Call, event: str, user_id: str) -> bool:
    """Whether ``call`` is exactly what ``event`` by ``user_id`` made of it (a redelivered
    command whose first run committed but whose effects may not have been published)."""
    if event == "accept_call":
        return call.state is CallState.ACCEPTED and call.accepted_by == user_id
    if event == "reject_call":
        return call.state is CallState.REJECTED and call.rejected_by == user_id
    if event == "end_call":
        return call.state is CallState.ENDED and call.ended_by == user_id
    return False


def ended_by_system(call: Call, since: float) -> bool:
    """Ended by the system (a party gone past the grace) at ``since`` or later."""
    return (
        call.state is CallState.ENDED
        and call.ended_by is None
        and call.ended_at is not None
        and call.ended_at >= since
    )


def outcome(call: Call) -> str:
    """One word for a call history: how the call went (or is going)."""
    if call.state is CallState.RINGING:
        return "ringing"
    if call.state is CallState.ACCEPTED:
        return "in_progress"
    if call.state is CallState.MISSED:
        return "missed"
    if call.state is CallState.REJECTED:
        return call.reason if call.rejected_by is None and call.reason else "rejected"
    if call.accepted_at is None:
        return "cancelled"
    return "completed" if call.reason == EndReason.HANGUP else str(call.reason)
