"""PROTOCOL §5 — mentor presence."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from shared.protocol.base import MENTORS, ClientEvent, ServerPush, Timestamp, bounded_object

MentorStatusName = Literal["available", "busy", "in_session", "break", "offline"]
StatusData = Annotated[dict[str, Any], bounded_object(4 * 1024)]


class PresenceEvent(ClientEvent):
    SERVICE: ClassVar[str] = "presence"


class MentorAvailable(PresenceEvent):
    EVENT = "mentor_available"
    ROLES = MENTORS

    status_message: str | None = Field(default=None, max_length=140)
    status_data: StatusData | None = None


class MentorBusy(PresenceEvent):
    EVENT = "mentor_busy"
    ROLES = MENTORS

    status: Literal["busy", "in_session", "break", "offline"] = "busy"
    status_message: str | None = Field(default=None, max_length=140)
    status_data: StatusData | None = None


class MentorStatusView(BaseModel):
    """A mentor status as every client sees it."""

    mentor_id: str
    name: str
    status: MentorStatusName
    status_message: str | None
    status_data: dict[str, Any] | None
    online: bool
    updated_at: Timestamp


class GetMentors(PresenceEvent):
    """Every mentor's status, in listing order."""

    EVENT = "get_mentors"


class MentorStatusUpdate(MentorStatusView, ServerPush):
    """``mentor_status_update``: to every connection (a mentor's own: with its status data)."""

    EVENT = "mentor_status_update"


class MentorStatusSnapshot(ServerPush):
    """``mentor_status_snapshot``: to a connection as it opens."""

    EVENT = "mentor_status_snapshot"

    mentors: list[MentorStatusView]


_RANK = {"available": 0, "busy": 1, "break": 1, "in_session": 1}


def listing_order(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order of a mentor list (snapshot, ``get_mentors``), from what its reader sees:
    online first, available before others, then by name. A mentor appearing offline sorts
    exactly like a disconnected one."""
    return sorted(
        views,
        key=lambda v: (not v["online"], _RANK.get(v["status"], 2), v["name"], v["mentor_id"]),
    )
