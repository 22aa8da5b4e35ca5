"""The help service's own database schema (``settings.db_url("help")``): requests, who was
shown each, and the mentor view. Rows and domain objects share their field names, so the
mapping between them is derived (:class:`shared.rows.RowMapper`), not copied by hand."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table

from services.help.domain import HelpRequest, MentorState
from shared.dbtypes import ClientString, ClientText
from shared.rows import RowMapper
from shared.schema import ID

metadata = MetaData()

# Only the columns that need more than their field's type says are declared; the columns of
# times and flags are derived from the fields too.
_REQUESTS = RowMapper(HelpRequest)
_MENTORS = RowMapper(MentorState)

help_requests = _REQUESTS.table(
    "help_requests",
    metadata,
    Column("urgency_rank", Integer, nullable=False),  # the urgency's order, for ORDER BY
    Column("request_id", ClientString(ID), primary_key=True),
    Column("student_id", String(ID), nullable=False, index=True),
    Column("student_name", ClientString(80), nullable=False),
    Column("subject", ClientString(100), nullable=False),
    Column("message", ClientText, nullable=False),
    Column("urgency", String(8), nullable=False),
    Column("mentor_id", String(ID), nullable=True),  # NULL: a broadcast
    Column("status", String(12), nullable=False),
    Column("closed_by", String(ID), nullable=True),
    Column("closed_by_name", ClientString(80), nullable=True),
    Column("decline_reason", ClientString(200), nullable=True),
    Index("ix_help_requests_open", "status", "mentor_id"),
)

# A mentor was shown a request (closes go to exactly these); ``declined``: a broadcast this
# mentor declined, hidden from them from then on.
help_shown = Table(
    "help_shown",
    metadata,
    Column("request_id", ClientString(ID), primary_key=True),
    Column("mentor_id", String(ID), primary_key=True, index=True),
    Column("shown_at", Float, nullable=False),
    Column("declined", Boolean, nullable=False, default=False),
)

# Help's view of a mentor, fed by ``presence.mentor_status_changed``.
help_mentors = _MENTORS.table(
    "help_mentors",
    metadata,
    Column("mentor_id", String(ID), primary_key=True),
    Column("name", ClientString(80), nullable=False),
    Column("status", String(12), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

PRIORITY = (
    help_requests.c.urgency_rank.desc(),
    help_requests.c.created_at,
    help_requests.c.request_id,
)


def to_request(row: Any) -> HelpRequest:
    return _REQUESTS.to_object(row)


def request_row(request: HelpRequest) -> dict[str, Any]:
    return {**_REQUESTS.to_row(request), "urgency_rank": request.urgency.rank}


def to_mentor(row: Any) -> MentorState:
    return _MENTORS.to_object(row)


def mentor_row(mentor: MentorState) -> dict[str, Any]:
    return _MENTORS.to_row(mentor)
