"""The help service's schema as it was before migrations (indexes included).

Revision ID: 0001
Revises: (none: the first)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    op.create_table(
        "help_mentors",
        sa.Column("mentor_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("mentor_id"),
    )
    op.create_table(
        "help_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("student_name", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("urgency_rank", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("closed_by_name", sa.String(length=80), nullable=True),
        sa.Column("decline_reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_help_requests_open", "help_requests", ["status", "mentor_id"], unique=False)
    op.create_index(
        op.f("ix_help_requests_student_id"), "help_requests", ["student_id"], unique=False
    )
    op.create_table(
        "help_shown",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("mentor_id", sa.String(length=64), nullable=False),
        sa.Column("shown_at", sa.Float(), nullable=False),
        sa.Column("declined", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "mentor_id"),
    )
    op.create_index(op.f("ix_help_shown_mentor_id"), "help_shown", ["mentor_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_help_shown_mentor_id"), table_name="help_shown")
    op.drop_table("help_shown")
    op.drop_index(op.f("ix_help_requests_student_id"), table_name="help_requests")
    op.drop_index("ix_help_requests_open", table_name="help_requests")
    op.drop_table("help_requests")
    op.drop_table("help_mentors")
