"""Every error code the gateway produces itself; none of them costs the connection."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support.client import Frame, WsClient
from tests.support.stack import Gateway, Stack


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    stack.start_service("presence")
    return stack.start_gateway()


async def _still_works(client: WsClient) -> None:
    assert "server_time" in (await client.pong())["data"]


async def test_local_errors(gateway: Gateway, stack: Stack) -> None:
    student = await WsClient.connect(gateway.ws, stack.token("s1", "student"))
    await student.event("connected")
    cases = [
        ("{not json", None, "invalid_json"),
        ("[1,2]", None, "invalid_payload"),
        (json.dumps({"event": "warp_drive", "ref": "a1"}), "a1", "unknown_event"),
        (json.dumps({"event": "mentor_available", "ref": "a2"}), "a2", "forbidden"),
        (
            json.dumps({"event": "get_history", "ref": "a3", "data": {"conversation_id": 5}}),
            "a3",
            "invalid_payload",
        ),
        (
            json.dumps({"event": "send_message", "ref": "a4", "data": {"recipient_id": "x"}}),
            "a4",
            "invalid_payload",
        ),
        (json.dumps({"event": "ping", "ref": "x" * 65}), None, "invalid_payload"),
        (json.dumps({"event": "ping", "ref": "a5", "data": "zz"}), "a5", "invalid_payload"),
        (
            json.dumps({"event": "ping", "ref": "a6", "data": {"pad": "x" * 70_000}}),
            None,
            "payload_too_large",
        ),
    ]
    for raw, ref, code in cases:
        before = len(student.frames)
        await student.send_raw(raw)

        def is_new_error(f: Frame, n: int = before) -> bool:
            return f["event"] == "error" and student.frames.index(f) >= n

        error = await student.wait_for(
            is_new_error,
            what=f"error {code}",
        )
        assert error["data"]["code"] == code, (raw[:80], error)
        assert error["ref"] == ref
        assert error["data"]["message"]
        await _still_works(student)
    before = len(student.frames)
    await student.connection.send(b"\x00binary")
    error = await student.wait_for(
        lambda f: f["event"] == "error" and student.frames.index(f) >= before, what="binary error"
    )
    assert error["data"]["code"] == "invalid_json"
    await _still_works(student)
    await student.close()


async def test_error_without_ref_has_null_ref(gateway: Gateway, stack: Stack) -> None:
    student = await WsClient.connect(gateway.ws, stack.token("s2", "student"))
    await student.send("mentor_busy", {})
    error = await student.event("error")
    assert error["ref"] is None
    assert error["data"] == {
        "code": "forbidden",
        "message": error["data"]["message"],
        "event": "mentor_busy",
    }
    await student.close()


async def test_rate_limit_drops_excess_and_keeps_connection(stack: Stack) -> None:
    gateway = stack.start_gateway(IM_RATE_LIMIT_PER_S="5", IM_RATE_LIMIT_BURST="10")
    student = await WsClient.connect(gateway.ws, stack.token("s3", "student"))
    await student.event("connected")
    for i in range(40):
        await student.send("ping", {}, ref=f"p{i}")
    await student.wait_for(
        lambda f: f.get("ref") == "p39" and f["event"] in ("pong", "error"), what="last reply"
    )
    pongs = student.count("pong")
    limited = [f for f in student.frames if f["event"] == "error"]
    assert all(f["data"]["code"] == "rate_limited" for f in limited)
    assert pongs + len(limited) == 40
    assert 10 <= pongs < 40, pongs
    assert limited, "some frames must be rate limited"
    await _still_works_after_refill(student)
    await student.close()


async def _still_works_after_refill(client: WsClient) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reply = await client.request("ping", {})
        if reply["event"] == "pong":
            return
    raise AssertionError("the connection never recovered from rate limiting")


async def test_oversized_frame_beyond_hard_limit_closes_1009(
    gateway: Gateway, stack: Stack
) -> None:
    student = await WsClient.connect(gateway.ws, stack.token("s4", "student"))
    await student.event("connected")
    await student.send_raw(json.dumps({"event": "ping", "data": {"pad": "x" * 2_000_000}}))
    await asyncio.wait_for(student.connection.wait_closed(), 10)
    assert student.connection.close_code == 1009


async def test_service_down_gives_unavailable(stack: Stack) -> None:
    gateway = stack.start_gateway(IM_REQUEST_TIMEOUT_S="1")  # no presence running
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor"))
    await mentor.event("connected")
    assert await mentor.error("mentor_available", {}) == "unavailable"
    await _still_works(mentor)
    await mentor.close()
