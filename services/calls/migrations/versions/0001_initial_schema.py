"""The calls service's schema as it was before migrations (indexes included).

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
        "call_lines",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index(op.f("ix_call_lines_call_id"), "call_lines", ["call_id"], unique=False)
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("caller_id", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=80), nullable=False),
        sa.Column("caller_role", sa.String(length=16), nullable=False),
        sa.Column("receiver_id", sa.String(length=64), nullable=False),
        sa.Column("receiver_name", sa.String(length=80), nullable=True),
        sa.Column("call_type", sa.String(length=16), nullable=False),
        sa.Column("call_data", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("accepted_by", sa.String(length=64), nullable=True),
        sa.Column("accepted_at", sa.Float(), nullable=True),
        sa.Column("accept_data", sa.JSON(), nullable=True),
        sa.Column("rejected_by", sa.String(length=64), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("origin_connection", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_calls_caller", "calls", ["caller_id", "created_at"], unique=False)
    op.create_index("ix_calls_receiver", "calls", ["receiver_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_calls_receiver", table_name="calls")
    op.drop_index("ix_calls_caller", table_name="calls")
    op.drop_table("calls")
    op.drop_index(op.f("ix_call_lines_call_id"), table_name="call_lines")
    op.drop_table("call_lines")
