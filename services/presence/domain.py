"""The rules of presence, without I/O.

A mentor has a *chosen* status (what they last picked, remembered across sessions) and an
*effective* status (what everyone sees): ``offline`` while they have no connection,
``in_session`` while one of their calls is accepted, their choice otherwise.

Going offline is delayed by the reconnect grace: the last connection closing starts a timer
stamped with the user's *generation*; any later connection bumps the generation, so the
timer, when it fires, sees it is stale and a quick reconnect causes no offline flicker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from shared.protocol.domain import USERS_PER_FACT

T = TypeVar("T")


class Status(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    IN_SESSION = "in_session"
    BREAK = "break"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class UserPresence:
    """Whether a user (student or mentor) counts as connected, and the grace generation."""

    user_id: str
    role: str
    online: bool = False
    generation: int = 0

    def connected(self) -> UserPresence:
        """A connection arrived: cancels any pending grace, online from now."""
        return replace(self, online=True, generation=self.generation + 1)

    def last_connection_closed(self) -> tuple[UserPresence, int]:
        """The user has no connection left: returns the state and the grace timer's stamp."""
        advanced = replace(self, generation=self.generation + 1)
        return advanced, advanced.generation

    def grace_expired(self, stamp: int, has_connections: bool) -> UserPresence | None:
        """The grace timer fired: the offline state, or None when it no longer applies."""
        if not self.online or has_connections or stamp != self.generation:
            return None
        return replace(self, online=False)


@dataclass(frozen=True, slots=True)
class Mentor:
    mentor_id: str
    name: str
    chosen: Status = Status.AVAILABLE
    status_message: str | None = None
    status_data: dict[str, Any] | None = None
    online: bool = False
    session_calls: frozenset[str] = frozenset()
    ended_calls: tuple[str, ...] = ()  # recent ends, so a late "accepted" cannot revive them
    updated_at: float = 0.0

    @property
    def status(self) -> Status:
        if not self.online or self.chosen is Status.OFFLINE:
            return Status.OFFLINE
        if self.session_calls:
            return Status.IN_SESSION
        return self.chosen

    @property
    def shown_online(self) -> bool:
        """``online`` as others see it: a mentor who chose ``offline`` while connected looks
        exactly like a disconnected one (PROTOCOL v1.1 §5, "appear offline")."""
        return self.online and self.chosen is not Status.OFFLINE

    def visible(self) -> tuple[object, ...]:
        """What clients see, apart from the timestamp: a change here is broadcast."""
        data = tuple(sorted((self.status_data or {}).items(), key=lambda kv: kv[0]))
        return (self.name, self.status, self.status_message, repr(data), self.online)


def choose_status(
    mentor: Mentor, status: Status, message: str | None, data: dict[str, Any] | None, now: float
) -> Mentor:
    """The mentor picked a status (``mentor_available`` / ``mentor_busy``)."""
    return replace(mentor, chosen=status, status_message=message, status_data=data, updated_at=now)


def set_online(mentor: Mentor, online: bool, now: float, name: str | None = None) -> Mentor:
    """First connection (online) or grace expired (offline); the choice is kept."""
    return replace(mentor, online=online, name=name or mentor.name, updated_at=now)


REMEMBERED_ENDS = 32


def session_started(mentor: Mentor, call_id: str, now: float) -> Mentor:
    """A call of the mentor was accepted (facts may arrive late or twice)."""
    if call_id in mentor.session_calls or call_id in mentor.ended_calls:
        return mentor
    return replace(mentor, session_calls=mentor.session_calls | {call_id}, updated_at=now)


def session_ended(mentor: Mentor, call_id: str, now: float) -> Mentor:
    """A call of the mentor ended — possibly before its "accepted" fact arrived."""
    if call_id in mentor.ended_calls:
        return mentor
    ended = (*mentor.ended_calls, call_id)[-REMEMBERED_ENDS:]
    if call_id not in mentor.session_calls:
        return replace(mentor, ended_calls=ended)
    return replace(
        mentor, session_calls=mentor.session_calls - {call_id}, ended_calls=ended, updated_at=now
    )


def changed(before: Mentor | None, after: Mentor) -> bool:
    return before is None or before.visible() != after.visible()


def spread_changes(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    """Users whose sockets are now on a different number of gateways, and those gateways:
    each is told, when the user is on several now or was before (the share changes)."""
    return {
        user_id: gateways
        for user_id, gateways in after.items()
        if len(gateways) != len(before.get(user_id, ()))
        and (len(gateways) > 1 or len(before.get(user_id, ())) > 1)
    }


def chunks(items: list[T], size: int = USERS_PER_FACT) -> list[list[T]]:
    """``items`` in consecutive parts of at most ``size`` (none for no items)."""
    return [items[start : start + size] for start in range(0, len(items), size)]
