"""Chat's rows map to its domain objects by field name, so every column must be a field."""

from __future__ import annotations

from dataclasses import fields

from services.chat.domain import Conversation, Markers, Message
from services.chat.tables import conversations, markers, message_row, messages, to_message


def test_every_table_has_exactly_the_fields_of_its_domain_object() -> None:
    assert [c.name for c in messages.columns] == [f.name for f in fields(Message)]
    assert [c.name for c in conversations.columns] == [f.name for f in fields(Conversation)]
    assert {c.name for c in markers.columns} - {"conversation_id", "user_id"} == {
        f.name for f in fields(Markers)
    }


def test_a_message_survives_the_round_trip_through_its_row() -> None:
    message = Message("m1", "dm_x", 3, "a", "A", "b", "hi", 1.0, "k", "c", "cmd", 2.0, None)
    assert to_message(message_row(message)) == message
