"""How presence looks on the wire (PROTOCOL §5) and in its facts: mentor statuses, listings,
and the users of a unit of work."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from services.presence.domain import Mentor, UserPresence
from shared.protocol.domain import UserPresenceFact, UsersPresenceFact
from shared.protocol.envelope import fit
from shared.protocol.presence import (
    MentorStatusSnapshot,
    MentorStatusUpdate,
    MentorStatusView,
    listing_order,
)

V = TypeVar("V", bound=MentorStatusView)


def _status(mentor: Mentor, model: type[V], to_self: bool) -> V:
    """A mentor's status as everyone sees it, or (``to_self``) as the mentor's own connections
    do: only they see ``online: true`` while appearing offline."""
    return model(
        mentor_id=mentor.mentor_id,
        name=mentor.name,
        status=mentor.status.value,
        status_message=mentor.status_message,
        status_data=mentor.status_data,
        online=mentor.online if to_self else mentor.shown_online,
        updated_at=mentor.updated_at,
    )


def mentor_status(mentor: Mentor, to_self: bool = False) -> dict[str, Any]:
    """The status (see :func:`_status`) in a listing or a fact."""
    return _status(mentor, MentorStatusView, to_self).model_dump()


def status_update(mentor: Mentor, to_self: bool = False) -> MentorStatusUpdate:
    """``mentor_status_update`` (see :func:`_status`)."""
    return _status(mentor, MentorStatusUpdate, to_self)


def mentor_status_for(mentor: Mentor, reader_id: str) -> dict[str, Any]:
    """The status as ``reader_id`` sees it."""
    return mentor_status(mentor, to_self=reader_id == mentor.mentor_id)


def mentor_list(mentors: Iterable[Mentor], reader_id: str) -> dict[str, Any]:
    """``get_mentors``' answer and the snapshot a connection gets: as many as fit a frame,
    in listing order (as ``reader_id`` sees them)."""
    return {"mentors": fit(listing_order([mentor_status_for(m, reader_id) for m in mentors]))}


def snapshot(mentors: Iterable[Mentor], reader_id: str) -> MentorStatusSnapshot:
    """``mentor_status_snapshot``: the listing a connection gets as it opens."""
    return MentorStatusSnapshot.model_validate(mentor_list(mentors, reader_id))


def users_fact(users: Iterable[UserPresence]) -> dict[str, Any]:
    """``presence.users_online`` / ``presence.users_offline``."""
    return UsersPresenceFact(
        users=[UserPresenceFact(user_id=u.user_id, role=u.role) for u in users]
    ).model_dump()
