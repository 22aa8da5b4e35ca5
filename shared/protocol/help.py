"""PROTOCOL §6 — help requests."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from shared.protocol.base import (
    MENTORS,
    STUDENTS,
    ClientEvent,
    EntityId,
    ServerPush,
    Timestamp,
    UserId,
)

BROADCAST = "broadcast_to_mentors"
Urgency = Literal["low", "medium", "high"]


class HelpEvent(ClientEvent):
    SERVICE: ClassVar[str] = "help"


class StudentRequestHelp(HelpEvent):
    EVENT = "student_request_help"
    ROLES = STUDENTS

    subject: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=2000)
    urgency: Urgency = "medium"
    mentor_id: UserId = BROADCAST


class HelpRequestRef(HelpEvent):
    """Names one help request."""

    request_id: EntityId


class AcceptHelpRequest(HelpRequestRef):
    """A mentor takes the request: the first mentor to accept gets it."""

    EVENT = "accept_help_request"
    ROLES = MENTORS


class CancelHelpRequest(HelpRequestRef):
    """The student withdraws their open request."""

    EVENT = "cancel_help_request"
    ROLES = STUDENTS


class DeclineHelpRequest(HelpRequestRef):
    EVENT = "decline_help_request"
    ROLES = MENTORS

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
    created_at: Timestamp
    expires_at: Timestamp


class HelpRequestReceived(HelpRequestView, ServerPush):
    """``help_request_received``: to each mentor it is shown to."""

    EVENT = HELP_REQUEST_RECEIVED


class ListHelpRequests(HelpEvent):
    """The open requests a mentor may take, or a student's own requests."""

    EVENT = "list_help_requests"


class HelpRequestCreated(BaseModel):
    """The ``ack`` of ``student_request_help``."""

    request_id: str
    status: Literal["open"] = "open"
    delivered_to: int
    expires_at: Timestamp


class HelpRequestAccepted(ServerPush):
    """``help_request_accepted`` (to the student)."""

    EVENT = HELP_REQUEST_ACCEPTED

    request_id: str
    mentor_id: str
    mentor_name: str


class HelpRequestClosed(ServerPush):
    """``help_request_closed`` (to the other mentors who were shown the request)."""

    EVENT = HELP_REQUEST_CLOSED

    request_id: str
    reason: CloseReason


class HelpRequestDeclined(ServerPush):
    """``help_request_declined`` (to the student; targeted requests only)."""

    EVENT = HELP_REQUEST_DECLINED

    request_id: str
    mentor_id: str
    reason: str | None


class HelpRequestExpired(ServerPush):
    """``help_request_expired`` (to the student)."""

    EVENT = HELP_REQUEST_EXPIRED

    request_id: str


# -- GET /api/help/templates (the gateway serves services/gateway/help_templates.py) -----------


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
