"""PROTOCOL §6 — help requests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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


# -- What the help service sends (PROTOCOL §6) ------------------

HELP_REQUEST_RECEIVED = "help_request_received"
HELP_REQUEST_ACCEPTED = "help_request_accepted"
HELP_REQUEST_CLOSED = "help_request_closed"
HELP_REQUEST_DECLINED = "help_request_declined"
HELP_REQUEST_EXPIRED = "help_request_expired"

HelpRequestStatusName = Literal["open", "accepted", "declined", "cancelled", "expired"]
CloseReason = Literal["accepted", "cancelled", "expired"]


class HelpRequestView(BaseModel):
    """A help request as clients see it (``help_request_received``, ``list_help_requests``)."""

    request_id: str
    student_id: str
    student_name: str
    subject: str
    message: str
    urgency: Urgency
    mentor_id: str | None
    status: HelpRequestStatusName
    created_at: str
    expires_at: str


class HelpRequestCreated(BaseModel):
    """The ``ack`` of ``student_request_help``."""

    request_id: str
    status: Literal["open"] = "open"
    delivered_to: int
    expires_at: str


class HelpRequestAccepted(BaseModel):
    """``help_request_accepted`` (to the student)."""

    request_id: str
    mentor_id: str
    mentor_name: str


class HelpRequestClosed(BaseModel):
    """``help_request_closed`` (to the other mentors who were shown the request)."""

    request_id: str
    reason: CloseReason


class HelpRequestDeclined(BaseModel):
    """``help_request_declined`` (to the student; targeted requests only)."""

    request_id: str
    mentor_id: str
    reason: str | None


class HelpRequestExpired(BaseModel):
    """``help_request_expired`` (to the student)."""

    request_id: str


# -- GET /api/help/templates: pure data, importable by the gateway without a round trip --------


class UrgencyTemplate(BaseModel):
    value: Urgency
    label: str
    color: str
    description: str


class QuickAction(BaseModel):
    subject: str
    text: str


class HelpTemplates(BaseModel):
    subjects: list[str]
    urgencies: list[UrgencyTemplate]
    default_urgency: Urgency
    quick_actions: list[QuickAction]


HELP_TEMPLATES = HelpTemplates(
    subjects=["Math", "Programming", "Science", "General"],
    urgencies=[
        UrgencyTemplate(
            value="low", label="Low", color="#4CAF50", description="Whenever a mentor is free"
        ),
        UrgencyTemplate(
            value="medium", label="Medium", color="#FF9800", description="Within the next hour"
        ),
        UrgencyTemplate(value="high", label="High", color="#F44336", description="I need help now"),
    ],
    default_urgency="medium",
    quick_actions=[
        QuickAction(subject="Math", text="I'm stuck on a homework problem"),
        QuickAction(subject="Math", text="Can you explain this concept step by step?"),
        QuickAction(subject="Programming", text="My code doesn't compile / run"),
        QuickAction(subject="Programming", text="Can you review my code?"),
        QuickAction(subject="Science", text="I don't understand this experiment or formula"),
        QuickAction(subject="Science", text="Can you help me prepare for a test?"),
        QuickAction(subject="General", text="I need help getting started"),
        QuickAction(subject="General", text="Can we talk through my study plan?"),
    ],
)


def help_templates() -> dict[str, object]:
    """The body of ``GET /api/help/templates`` (the gateway serves it itself)."""
    return HELP_TEMPLATES.model_dump(mode="json")
