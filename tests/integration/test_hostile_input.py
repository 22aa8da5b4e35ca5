"""Hostile input (issue "Hostile input and the first run"), over real WebSockets: each frame
gets a clear error and the connection keeps working; a socket does not outlive its token; the
gateway will not start with a token secret anyone could know."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest

from shared.settings import DEV_JWT_SECRET
from tests.support.client import Frame, WsClient, bearer
from tests.support.stack import JWT_SECRET, Gateway, Stack, wait_until
from tools.rabbit import free_port


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    stack.start_service("chat")
    return stack.start_gateway()


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_frames_that_once_killed_the_connection(gateway: Gateway, stack: Stack) -> None:
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor"))
    await mentor.event("connected")
    status = {"status_data": _nested(40)}
    cases = [
        ("[" * 5000, None, "invalid_json"),  # was RecursionError: reader died, close 1006
        ('{"event":"ping","ref":"\\ud800"}', None, "invalid_json"),  # lone surrogate
        (json.dumps({"event": "mentor_available", "ref": "n1", "data": status}), "n1", None),
        (
            json.dumps(
                {
                    "event": "get_history",
                    "ref": "n2",
                    "data": {"conversation_id": "dm_x", "before_seq": 2**70},
                }
            ),
            "n2",
            "invalid_payload",
        ),
    ]
    for raw, ref, code in cases:
        before = len(mentor.frames)
        await mentor.send_raw(raw)

        def is_new_error(f: Frame, n: int = before) -> bool:
            return f.get("event") == "error" and f in mentor.frames[n:]

        error = await mentor.wait_for(
            is_new_error,
            timeout=5,
            what=f"an error for {raw[:40]!r}",
        )
        assert error["ref"] == ref
        assert error["data"]["code"] == (code or "invalid_payload"), error
        await mentor.pong()
    await mentor.close()


async def test_http_refuses_a_sequence_number_beyond_2_53(gateway: Gateway, stack: Stack) -> None:
    headers = bearer(stack.token("alice"))
    async with httpx.AsyncClient(base_url=gateway.http, headers=headers) as http:
        page = await http.get("/api/conversations/dm_x/messages", params={"before_seq": 2**70})
    assert page.status_code == 400, page.text


async def test_a_sub_with_a_trailing_newline_is_refused(gateway: Gateway) -> None:
    claims = {"sub": "alice\n", "role": "student", "exp": int(time.time()) + 60}
    client = await WsClient.connect(gateway.ws, jwt.encode(claims, JWT_SECRET, "HS256"))
    await client.connection.wait_closed()
    assert client.connection.close_code == 4401
    assert not client.frames


async def test_a_socket_is_closed_when_its_token_expires(gateway: Gateway) -> None:
    claims: dict[str, Any] = {"sub": "shortlived", "role": "student", "exp": int(time.time()) + 2}
    client = await WsClient.connect(gateway.ws, jwt.encode(claims, JWT_SECRET, "HS256"))
    await client.event("connected")
    await client.pong()
    await client.connection.wait_closed()
    assert client.connection.close_code == 4401
    assert time.time() >= claims["exp"] - 0.5


@pytest.mark.parametrize("secret", [DEV_JWT_SECRET, "short-secret"])
def test_the_gateway_refuses_a_guessable_secret_outside_dev_mode(stack: Stack, secret: str) -> None:
    env = stack.env(IM_JWT_SECRET=secret, IM_DEV_MODE="false", IM_GATEWAY_PORT=str(free_port()))
    gateway = stack._spawn("gateway", "services.gateway", env)
    wait_until(lambda: not gateway.alive(), timeout_s=30, what="the gateway to refuse")
    assert gateway.popen.returncode != 0
    assert "refusing to start" in gateway.log() and "IM_JWT_SECRET" in gateway.log()
