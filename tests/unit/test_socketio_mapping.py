"""PROTOCOL §8 without I/O: Socket.IO events as /ws frames, replies as acknowledgements."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.frames import FrameError
from services.gateway.socketio_mapping import (
    ALIASES,
    acknowledgement,
    canonical,
    parse_event,
    refusal_data,
    token_of,
)
from shared.auth import Role
from shared.errors import ErrorCode
from shared.protocol.registry import CLIENT_EVENTS

MAX = 64 * 1024


def parsed(event: str, *args: Any, role: Role = Role.STUDENT) -> dict[str, Any]:
    frame = parse_event(event, args, "sio1", role, MAX)
    assert frame.ref == "sio1" and frame.spec.name == event
    return frame.payload.model_dump(mode="json", exclude_none=True)


def refused(event: str, *args: Any, role: Role = Role.STUDENT, max_bytes: int = MAX) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_event(event, args, "sio1", role, max_bytes)
    assert caught.value.ref == "sio1"
    return caught.value


def test_every_alias_names_a_snake_case_field_of_the_protocol() -> None:
    fields = {name for spec in CLIENT_EVENTS.values() for name in spec.payload.model_fields}
    for alias, name in ALIASES.items():
        assert name == "".join(f"_{c.lower()}" if c.isupper() else c for c in alias)
        # caller_id is in no client event (only in the call_initiated push): ignored, as any
        # user id a client sends is
        assert name in fields or name == "caller_id", name
    assert len(ALIASES) == 12  # the list of PROTOCOL §8


def test_camel_case_fields_are_renamed_at_the_top_level_only() -> None:
    data = {"callId": "c1", "signal": {"callId": "kept", "sdp": "v=0"}, "reason": "x"}
    assert canonical(data) == {
        "call_id": "c1",
        "signal": {"callId": "kept", "sdp": "v=0"},
        "reason": "x",
    }


def test_data_without_aliases_is_passed_as_it_is() -> None:
    data = {"call_id": "c1"}
    assert canonical(data) is data
    assert canonical("not an object") == "not an object"


def test_both_names_agreeing_pass_and_disagreeing_are_refused() -> None:
    assert canonical({"callId": "c1", "call_id": "c1"}) == {"call_id": "c1"}
    error = refused("end_call", {"callId": "c1", "call_id": "c2"})
    assert error.code is ErrorCode.INVALID_PAYLOAD and "callId" in error.message


@pytest.mark.parametrize(
    ("event", "role", "camel", "snake"),
    [
        (
            "initiate_call",
            Role.STUDENT,
            {"receiverId": "maya", "callType": "audio", "callData": {"a": 1}},
            {"receiver_id": "maya", "call_type": "audio", "call_data": {"a": 1}},
        ),
        ("accept_call", Role.MENTOR, {"callId": "c1"}, {"call_id": "c1"}),
        (
            "mentor_busy",
            Role.MENTOR,
            {"status": "break", "statusMessage": "back at 2", "statusData": {"until": "14:00"}},
            {"status": "break", "status_message": "back at 2", "status_data": {"until": "14:00"}},
        ),
        (
            "send_message",
            Role.STUDENT,
            {"recipientId": "bob", "text": "hi", "clientMsgId": "m1"},
            {"recipient_id": "bob", "text": "hi", "client_msg_id": "m1"},
        ),
        (
            "message_read",
            Role.STUDENT,
            {"conversationId": "dm_1", "up_to_seq": 3},
            {"conversation_id": "dm_1", "up_to_seq": 3},
        ),
        (
            "student_request_help",
            Role.STUDENT,
            {"subject": "Math", "message": "help", "mentorId": "broadcast_to_mentors"},
            {"subject": "Math", "message": "help", "mentor_id": "broadcast_to_mentors"},
        ),
        ("accept_help_request", Role.MENTOR, {"requestId": "r1"}, {"request_id": "r1"}),
    ],
)
def test_camel_case_and_snake_case_give_the_same_command(
    event: str, role: Role, camel: dict[str, Any], snake: dict[str, Any]
) -> None:
    assert parsed(event, camel, role=role) == parsed(event, snake, role=role)


def test_an_event_without_arguments_has_empty_data() -> None:
    assert parsed("get_mentors") == {}
    assert parsed("ping") == {}


def test_the_checks_of_ws_apply() -> None:
    assert refused("no_such_event", {}).code is ErrorCode.UNKNOWN_EVENT
    assert refused("mentor_available", {}).code is ErrorCode.FORBIDDEN
    assert refused("send_message", {"recipient_id": "bob"}).code is ErrorCode.INVALID_PAYLOAD
    assert refused("send_message", "text").code is ErrorCode.INVALID_PAYLOAD
    assert refused("get_mentors", {}, {}).code is ErrorCode.INVALID_PAYLOAD  # one argument
    nested: Any = {}
    for _ in range(40):
        nested = {"n": nested}
    assert refused("call_signal", {"call_id": "c", "signal": nested}).code is (
        ErrorCode.INVALID_PAYLOAD
    )
    assert refused("send_message", {"recipient_id": "b", "text": "x", "n": 2**60}).code is (
        ErrorCode.INVALID_PAYLOAD
    )


def test_frames_over_the_size_limit_are_too_large() -> None:
    error = refused("send_message", {"recipient_id": "bob", "text": "x" * 2000}, max_bytes=1024)
    assert error.code is ErrorCode.PAYLOAD_TOO_LARGE and error.event == "send_message"


def test_what_is_not_json_text_is_invalid_json() -> None:
    lone_surrogate = {"recipient_id": "bob", "text": "\ud800"}
    assert refused("send_message", lone_surrogate).code is ErrorCode.INVALID_JSON
    binary = {"call_id": "c1", "signal": {"blob": b"\x00\x01"}}
    assert refused("call_signal", binary).code is ErrorCode.INVALID_JSON


def test_replies_become_acknowledgements() -> None:
    assert acknowledgement({"event": "ack", "ref": "sio1", "data": {"seq": 1}}) == {
        "ok": True,
        "data": {"seq": 1},
    }
    assert acknowledgement({"event": "pong", "ref": "sio1", "data": {"server_time": "t"}}) == {
        "ok": True,
        "data": {"server_time": "t"},
    }
    error = {"code": "not_found", "message": "no such call", "event": "accept_call"}
    assert acknowledgement({"event": "error", "ref": "sio1", "data": error}) == {
        "ok": False,
        "error": {"code": "not_found", "message": "no such call"},
    }
    limited = {"code": "rate_limited", "message": "slow down", "event": "x", "retry_after_ms": 50}
    assert acknowledgement({"event": "error", "ref": "sio1", "data": limited})["error"] == {
        "code": "rate_limited",
        "message": "slow down",
        "retry_after_ms": 50,
    }


def test_refusals_carry_the_close_code_of_ws() -> None:
    assert refusal_data(4401, "token expired") == {"code": 4401, "message": "token expired"}
    assert refusal_data(1013, "busy", 250) == {
        "code": 1013,
        "message": "busy",
        "retry_after_ms": 250,
    }


def test_the_token_comes_from_auth_then_query_then_header() -> None:
    assert token_of({"token": "a"}, "token=q", "Bearer h") == "a"
    assert token_of({}, "token=q&x=1", "Bearer h") == "q"
    assert token_of(None, "EIO=4&transport=polling", "Bearer h") == "h"
    assert token_of({"token": 5}, "", None) is None
    assert token_of("token", "", "Basic abc") is None
