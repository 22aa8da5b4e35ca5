"""What the gateway checks itself: envelopes, schemas, roles, sizes, the rate limit, tokens."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from services.gateway.frames import FrameError, parse_frame
from services.gateway.ratelimit import TokenBucket
from shared.auth import Role, issue_token, verify_token
from shared.errors import AuthError, ErrorCode

LIMIT = 64 * 1024
SECRET = "unit-secret-0123456789abcdef-0123456789"


def _error(raw: str | bytes, role: Role = Role.STUDENT) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_frame(raw, role, LIMIT)
    return caught.value


def test_valid_frame_is_parsed_with_defaults() -> None:
    parsed = parse_frame(
        json.dumps({"event": "get_history", "data": {"conversation_id": "c"}, "ref": "1"}),
        Role.STUDENT,
        LIMIT,
    )
    assert parsed.spec.service == "chat" and parsed.ref == "1"
    assert parsed.payload.model_dump()["limit"] == 50


def test_data_may_be_omitted() -> None:
    assert parse_frame('{"event":"ping"}', Role.MENTOR, LIMIT).payload.model_dump() == {}


@pytest.mark.parametrize(
    ("raw", "code", "ref"),
    [
        ("{", ErrorCode.INVALID_JSON, None),
        (b"{}", ErrorCode.INVALID_JSON, None),
        ('"just a string"', ErrorCode.INVALID_PAYLOAD, None),
        ('{"data":{}}', ErrorCode.INVALID_PAYLOAD, None),
        ('{"event":"nope","ref":"r"}', ErrorCode.UNKNOWN_EVENT, "r"),
        ('{"event":"mentor_busy","ref":"r"}', ErrorCode.FORBIDDEN, "r"),
        (
            '{"event":"send_message","ref":"r","data":{"recipient_id":"b","text":"   "}}',
            ErrorCode.INVALID_PAYLOAD,
            "r",
        ),
        ('{"event":"send_message","ref":"r","data":{"text":"hi"}}', ErrorCode.INVALID_PAYLOAD, "r"),
        (
            '{"event":"get_history","ref":"r","data":{"conversation_id":"c","limit":"5"}}',
            ErrorCode.INVALID_PAYLOAD,
            "r",
        ),
        (
            '{"event":"get_history","ref":"r","data":{"conversation_id":"c","limit":101}}',
            ErrorCode.INVALID_PAYLOAD,
            "r",
        ),
        (
            '{"event":"initiate_call","ref":"r","data":{"receiver_id":"b","call_type":"fax"}}',
            ErrorCode.INVALID_PAYLOAD,
            "r",
        ),
        ('{"event":"ping","ref":5}', ErrorCode.INVALID_PAYLOAD, None),
    ],
)
def test_refusals(raw: str, code: ErrorCode, ref: str | None) -> None:
    error = _error(raw)
    assert error.code == code
    assert error.ref == ref
    assert error.message


def test_oversized_frame() -> None:
    assert (
        _error(json.dumps({"event": "ping", "data": {"x": "é" * 40_000}})).code
        == ErrorCode.PAYLOAD_TOO_LARGE
    )


def test_nested_object_limits() -> None:
    big = {"event": "mentor_available", "data": {"status_data": {"k": "x" * 5000}}}
    assert _error(json.dumps(big), Role.MENTOR).code == ErrorCode.INVALID_PAYLOAD


def test_client_supplied_sender_is_dropped() -> None:
    raw = json.dumps(
        {"event": "send_message", "data": {"recipient_id": "b", "text": "hi", "sender_id": "evil"}}
    )
    assert "sender_id" not in parse_frame(raw, Role.STUDENT, LIMIT).payload.model_dump()


def test_token_bucket_allows_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=2, burst=3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert bucket.allow() and not bucket.allow()


def test_tokens() -> None:
    identity = verify_token(issue_token("alice", Role.MENTOR, SECRET, name="Alice"), SECRET)
    assert (identity.user_id, identity.role, identity.name) == ("alice", Role.MENTOR, "Alice")
    assert verify_token(issue_token("bob", "student", SECRET), SECRET).name == "bob"
    for bad in (
        None,
        issue_token("alice", "student", SECRET, ttl_s=-5),
        issue_token("alice", "admin", SECRET),
        issue_token("al ice", "student", SECRET),
        issue_token("alice", "student", SECRET, name="x" * 81),
        jwt.encode(
            {"sub": "a", "role": "student", "exp": int(time.time()) + 60},
            "other-secret-0123456789abcdef-01234",
            "HS256",
        ),
    ):
        with pytest.raises(AuthError):
            verify_token(bad, SECRET)


def test_tokens_never_reach_the_logs() -> None:
    import logging

    from shared.logs import RedactTokens

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/ws?token=eyJhbGc.abc.def&x=1"),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?token=***&x=1" [accepted]'
