"""PROTOCOL §5 — mentor presence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shared.protocol.base import Payload, bounded_object

MentorStatusName = Literal["available", "busy", "in_session", "break", "offline"]
StatusData = Annotated[dict[str, Any], bounded_object(4 * 1024)]


class MentorAvailable(Payload):
    status_message: str | None = Field(default=None, max_length=140)
    status_data: StatusData | None = None


class MentorBusy(Payload):
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
    updated_at: str
