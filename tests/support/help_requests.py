"""A help request as the tests make them: from student ``s1`` (Sam), on Math."""

from __future__ import annotations

from services.help.domain import HelpRequest, Status, Urgency

LIFETIME_S = 900.0


def help_request(
    request_id: str = "r1",
    urgency: str = "medium",
    created_at: float = 1000.0,
    mentor_id: str | None = None,
    status: Status = Status.OPEN,
) -> HelpRequest:
    """An open broadcast request unless told otherwise; it expires ``LIFETIME_S`` after
    ``created_at``."""
    return HelpRequest(
        request_id=request_id,
        student_id="s1",
        student_name="Sam",
        subject="Math",
        message="help",
        urgency=Urgency(urgency),
        mentor_id=mentor_id,
        status=status,
        created_at=created_at,
        expires_at=created_at + LIFETIME_S,
    )
