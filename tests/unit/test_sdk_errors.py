"""SDK: error frames become typed exceptions; ack/push data becomes typed objects."""

from __future__ import annotations

from typing import Any

import instantmentor_client as sdk
import pytest
from instantmentor_client.errors import ERROR_CLASSES, error_from_frame

PROTOCOL_CODES = {
    "invalid_json": sdk.InvalidJson,
    "invalid_payload": sdk.InvalidPayload,
    "unknown_event": sdk.UnknownEvent,
    "forbidden": sdk.Forbidden,
    "not_found": sdk.NotFound,
    "conflict": sdk.Conflict,
    "rate_limited": sdk.RateLimited,
    "payload_too_large": sdk.PayloadTooLarge,
    "unavailable": sdk.Unavailable,
    "internal": sdk.InternalError,
}


@pytest.mark.parametrize(("code", "cls"), sorted(PROTOCOL_CODES.items()))
def test_every_protocol_code_has_its_class(code: str, cls: type[sdk.InstantMentorError]) -> None:
    exc = error_from_frame({"code": code, "message": "nope", "event": "accept_call"})
    assert type(exc) is cls
    assert isinstance(exc, sdk.InstantMentorError)
    assert (exc.code, exc.message, exc.event) == (code, "nope", "accept_call")
    assert str(exc) == f"{code} (accept_call): nope"


def test_the_table_covers_exactly_the_protocol_codes() -> None:
    assert set(ERROR_CLASSES) == set(PROTOCOL_CODES)


def test_an_unknown_code_keeps_its_code_on_the_base_class() -> None:
    exc = error_from_frame({"code": "teapot", "message": "short and stout", "event": None})
    assert type(exc) is sdk.InstantMentorError
    assert (exc.code, exc.message, exc.event) == ("teapot", "short and stout", None)


@pytest.mark.parametrize(
    "data", [None, "boom", {}, {"code": 5, "message": None}, {"message": "m", "event": 3}]
)
def test_malformed_error_data_never_raises(data: Any) -> None:
    exc = error_from_frame(data)
    assert isinstance(exc, sdk.InstantMentorError)
    assert exc.code == "internal" and exc.event is None


def test_local_errors_and_their_families() -> None:
    assert issubclass(sdk.NotConnected, sdk.Unavailable)
    assert issubclass(sdk.ConnectionLost, sdk.Unavailable)
    assert issubclass(sdk.RequestTimeout, TimeoutError)
    assert not issubclass(sdk.RequestTimeout, sdk.Unavailable)
    timeout = sdk.RequestTimeout("no reply", event="ping")
    assert (timeout.code, timeout.event) == ("timeout", "ping")
    assert sdk.AuthenticationFailed("x").code == "unauthorized"
    assert sdk.ClientClosed("x").code == "closed"
    assert "code='forbidden'" in repr(sdk.Forbidden("no", event="mentor_busy"))


# -- typed data ----------------------------------------------------------------------------

MESSAGE = {
    "message_id": "m1",
    "conversation_id": "c1",
    "seq": 3,
    "sender_id": "alice",
    "sender_name": "Alice",
    "recipient_id": "bob",
    "text": "hi",
    "sent_at": "2024-01-01T10:00:00Z",
    "client_msg_id": None,
    "call_id": None,
}


def test_models_parse_known_fields_and_ignore_new_ones() -> None:
    message = sdk.ChatMessage.from_dict({**MESSAGE, "future_field": 1})
    assert (message.message_id, message.seq, message.text, message.status) == ("m1", 3, "hi", None)
    history = sdk.History.from_dict(
        {"conversation_id": "c1", "messages": [{**MESSAGE, "status": "read"}], "has_more": False}
    )
    assert history.messages[0].status == "read" and history.has_more is False
    summary = sdk.ConversationSummary.from_dict(
        {"conversation_id": "c1", "peer_id": "alice", "last_message": None, "unread_count": 0}
    )
    assert summary.last_message is None


def test_a_missing_required_field_is_a_protocol_violation() -> None:
    partial = {k: v for k, v in MESSAGE.items() if k != "seq"}
    with pytest.raises(sdk.ProtocolViolation, match="seq"):
        sdk.ChatMessage.from_dict(partial)
    with pytest.raises(sdk.ProtocolViolation):
        sdk.History.from_dict({"conversation_id": "c1", "messages": None, "has_more": False})


def test_event_payload_is_typed_for_known_pushes() -> None:
    assert sdk.Event("message_received", dict(MESSAGE)).payload == sdk.ChatMessage.from_dict(
        MESSAGE
    )
    mentor = {
        "mentor_id": "m1",
        "name": "Maya",
        "status": "available",
        "status_message": None,
        "status_data": None,
        "online": True,
        "updated_at": "t",
    }
    snapshot = sdk.Event("mentor_status_snapshot", {"mentors": [mentor]}).payload
    assert snapshot == [sdk.MentorStatus.from_dict(mentor)]
    assert sdk.Event("something_new", {"x": 1}).payload == {"x": 1}


def test_every_error_class_is_exported_by_its_module_and_the_package() -> None:
    from instantmentor_client import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, sdk.InstantMentorError)
        and not name.startswith("_")
    }
    assert classes <= set(errors.__all__), classes - set(errors.__all__)
    assert classes <= set(sdk.__all__), classes - set(sdk.__all__)
