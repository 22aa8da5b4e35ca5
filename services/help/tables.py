"""The help service's tables: requests, who was shown each, and the mentor view."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Boolean, Float, Index, Integer, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.help.domain import HelpRequest, MentorState, Status, Urgency
from shared.dbtypes import ClientString, ClientText


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "help_requests"

    request_id: Mapped[str] = mapped_column(ClientString(64), primary_key=True)
    student_id: Mapped[str] = mapped_column(String(64), index=True)
    student_name: Mapped[str] = mapped_column(ClientString(80))
    subject: Mapped[str] = mapped_column(ClientString(100))
    message: Mapped[str] = mapped_column(ClientText)
    urgency: Mapped[str] = mapped_column(String(8))
    urgency_rank: Mapped[int] = mapped_column(Integer)
    mentor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_by_name: Mapped[str | None] = mapped_column(ClientString(80), nullable=True)
    decline_reason: Mapped[str | None] = mapped_column(ClientString(200), nullable=True)

    __table_args__ = (Index("ix_help_requests_open", "status", "mentor_id"),)


class ShownRow(Base):
    """A mentor was shown a request (closes go to exactly these); ``declined``: a broadcast
    this mentor declined, hidden from them from then on."""

    __tablename__ = "help_shown"

    request_id: Mapped[str] = mapped_column(ClientString(64), primary_key=True)
    mentor_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    shown_at: Mapped[float] = mapped_column(Float)
    declined: Mapped[bool] = mapped_column(Boolean, default=False)


class MentorRow(Base):
    """Help's view of a mentor, fed by ``presence.mentor_status_changed``."""

    __tablename__ = "help_mentors"

    mentor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(ClientString(80))
    status: Mapped[str] = mapped_column(String(12))
    online: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[str] = mapped_column(String(40))


R = cast(Table, RequestRow.__table__)
S = cast(Table, ShownRow.__table__)
M = cast(Table, MentorRow.__table__)
PRIORITY = (R.c.urgency_rank.desc(), R.c.created_at, R.c.request_id)


def to_request(row: Any) -> HelpRequest:
    return HelpRequest(
        request_id=row.request_id,
        student_id=row.student_id,
        student_name=row.student_name,
        subject=row.subject,
        message=row.message,
        urgency=Urgency(row.urgency),
        mentor_id=row.mentor_id,
        status=Status(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        closed_by_name=row.closed_by_name,
        decline_reason=row.decline_reason,
    )


def to_mentor(row: Any) -> MentorState:
    return MentorState(row.mentor_id, row.name, row.status, bool(row.online), row.updated_at)
