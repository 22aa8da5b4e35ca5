"""PROTOCOL §6 — help requests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.protocol.base import EntityId, Payload, UserId

BROADCAST = "broadcast_to_mentors"
Urgency = Literal["low", "medium", "high"]


class StudentRequestHelp(Payload):
    subject: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=2000)
    urgency: Urgency = "medium"
    mentor_id: UserId = BROADCAST


class HelpRequestRef(Payload):
    """``accept_help_request`` and ``cancel_help_request``."""

    request_id: EntityId


class DeclineHelpRequest(HelpRequestRef):
    reason: str | None = Field(default=None, max_length=200)
