"""Chat's own database schema (``settings.db_url("chat")``).

The constraints are the last line of defence for the guarantees, whatever the code above
them does: a seq is used once per conversation, a ``client_msg_id`` once per sender, and a
command (redelivered after a crash) creates at most one message.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Index,
    MetaData,
    String,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.engine import Connection

from services.chat.domain import Conversation, Markers, Message
from shared.dbtypes import ClientString, ClientText
from shared.rows import RowMapper
from shared.schema import ID

metadata = MetaData()

# Rows and domain objects have the same field names, so the mapping is derived (shared.rows),
# not copied by hand; so are the columns of numbers (a seq, a time): only the columns that
# need more than their field's type says are declared here.
_CONVERSATION_ROWS = RowMapper(Conversation)
_MESSAGE_ROWS = RowMapper(Message)
_MARKER_ROWS = RowMapper(Markers)

conversations = _CONVERSATION_ROWS.table(
    "conversations",
    metadata,
    Column("id", ClientString(ID), primary_key=True),
    Column("user_a", String(ID), nullable=False),  # user_a < user_b
    Column("user_b", String(ID), nullable=False),
    Index("conversations_user_a", "user_a"),
    Index("conversations_user_b", "user_b"),
)

messages = _MESSAGE_ROWS.table(
    "messages",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("conversation_id", ClientString(ID), nullable=False),
    Column("sender_id", String(ID), nullable=False),
    Column("sender_name", ClientString(80), nullable=False),
    Column("recipient_id", String(ID), nullable=False),
    Column("text", ClientText, nullable=False),
    Column("client_msg_id", ClientString(ID), nullable=True),
    Column("call_id", ClientString(ID), nullable=True),
    Column("command_id", String(ID), nullable=True),
    UniqueConstraint("conversation_id", "seq", name="messages_seq"),
    UniqueConstraint("sender_id", "client_msg_id", name="messages_client_msg_id"),
    UniqueConstraint("sender_id", "command_id", name="messages_command_id"),
)

markers = _MARKER_ROWS.table(
    "markers",
    metadata,
    Column("conversation_id", ClientString(ID), primary_key=True),
    Column("user_id", String(ID), primary_key=True),  # the reader
)

to_conversation = _CONVERSATION_ROWS.to_object
conversation_row = _CONVERSATION_ROWS.to_row
to_message = _MESSAGE_ROWS.to_object
message_row = _MESSAGE_ROWS.to_row
to_markers = _MARKER_ROWS.to_object


_CONVERSATIONS = select(conversations).where(
    conversations.c.id.in_(bindparam("ids", expanding=True))
)


def load_conversations(conn: Connection, ids: set[str]) -> dict[str, Conversation]:
    if not ids:
        return {}
    rows = conn.execute(_CONVERSATIONS, {"ids": sorted(ids)}).mappings()
    return {r["id"]: to_conversation(r) for r in rows.all()}
