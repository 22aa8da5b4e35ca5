"""The chat service's schema as it was before migrations (indexes included).

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
        "conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_a", sa.String(length=64), nullable=False),
        sa.Column("user_b", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("conversations_user_a", "conversations", ["user_a"], unique=False)
    op.create_index("conversations_user_b", "conversations", ["user_b"], unique=False)
    op.create_table(
        "markers",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("delivered_seq", sa.Integer(), nullable=False),
        sa.Column("read_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=64), nullable=False),
        sa.Column("sender_name", sa.String(length=80), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("client_msg_id", sa.String(length=64), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("command_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "seq", name="messages_seq"),
        sa.UniqueConstraint("sender_id", "client_msg_id", name="messages_client_msg_id"),
        sa.UniqueConstraint("sender_id", "command_id", name="messages_command_id"),
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("markers")
    op.drop_index("conversations_user_b", table_name="conversations")
    op.drop_index("conversations_user_a", table_name="conversations")
    op.drop_table("conversations")
