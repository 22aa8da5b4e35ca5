"""The protocol's tables are collected from its models: each names its event once."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from shared.auth import Role
from shared.protocol import chat, help
from shared.protocol.base import ClientEvent, ServerPush, Timestamp
from shared.protocol.registry import CLIENT_EVENTS, SERVER_PUSHES, TRANSIENT, by_event


def test_each_event_row_comes_from_the_model_that_names_it() -> None:
    edit = CLIENT_EVENTS["edit_message"]
    assert (edit.service, edit.payload, edit.transient) == ("chat", chat.EditMessage, False)
    assert CLIENT_EVENTS["accept_help_request"].roles == {Role.MENTOR}
    assert CLIENT_EVENTS["cancel_help_request"].roles == {Role.STUDENT}
    assert CLIENT_EVENTS["cancel_help_request"].payload is help.CancelHelpRequest
    assert TRANSIENT == {"call_signal", "user_typing", "user_stopped_typing"}
    assert CLIENT_EVENTS["ping"].service == "gateway"
    # a model that only shares fields (no EVENT of its own) is no row
    assert chat.MessageReceipt not in {spec.payload for spec in CLIENT_EVENTS.values()}
    assert SERVER_PUSHES["user_typing"] is chat.TypingStarted
    assert SERVER_PUSHES["user_stopped_typing"] is chat.TypingStopped
    assert chat.TypingNotice not in SERVER_PUSHES.values()


def test_two_models_naming_one_event_are_refused() -> None:
    class Once(ClientEvent):
        EVENT = "twice"
        SERVICE: ClassVar[str] = "chat"

    class Again(ClientEvent):
        EVENT = "twice"
        SERVICE: ClassVar[str] = "chat"

    with pytest.raises(TypeError, match="Again and Once name one event"):
        by_event([Once, Again])


def test_a_push_is_its_event_and_its_data_in_one_frame_made_once() -> None:
    notice = chat.TypingStopped(conversation_id="dm_x", user_id="alice", user_name="Alice")
    assert notice.frame == {
        "event": "user_stopped_typing",
        "data": {"conversation_id": "dm_x", "user_id": "alice", "user_name": "Alice"},
    }
    assert notice.frame is notice.frame  # one object: the publisher merges pushes by identity
    assert isinstance(notice, ServerPush)


def test_a_timestamp_is_written_as_iso_from_epoch_seconds_or_kept_as_given() -> None:
    class Stamped(BaseModel):
        at: Timestamp
        maybe: Timestamp | None = None

    assert Stamped(at=1_700_000_000.25).at == "2023-11-14T22:13:20.250Z"
    assert Stamped(at=1_700_000_000).at == "2023-11-14T22:13:20.000Z"
    assert Stamped(at="2023-11-14T22:13:20.000Z", maybe=None).maybe is None
    with pytest.raises(ValidationError):
        Stamped(at=True)  # a bool is no time
