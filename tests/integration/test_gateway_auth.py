"""Every way a token is refused: the socket closes with 4401 before any event."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest

from tests.support.client import WsClient, bearer
from tests.support.stack import JWT_SECRET, Gateway, Stack


def _token(**claims: object) -> str:
    base: dict[str, object] = {"sub": "u1", "role": "student", "exp": int(time.time()) + 600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, JWT_SECRET, "HS256")


def _unsigned(claims: dict[str, object]) -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{body}."


REFUSED = {
    "missing": None,
    "expired": _token(exp=int(time.time()) - 10),
    "bad_signature": jwt.encode(
        {"sub": "u1", "role": "student", "exp": int(time.time()) + 600},
        "another-secret-0123456789abcdef-012345",
        "HS256",
    ),
    "alg_none": _unsigned({"sub": "u1", "role": "student", "exp": int(time.time()) + 600}),
    "unknown_role": _token(role="admin"),
    "no_exp": _token(exp=None),
    "bad_sub": _token(sub="has space"),
    "garbage": "not-a-jwt",
}


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    stack.start_service("presence")
    return stack.start_gateway()


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_refused_tokens_close_4401_before_any_event(gateway: Gateway, case: str) -> None:
    client = await WsClient.connect(gateway.ws, REFUSED[case])
    await asyncio.wait_for(client.connection.wait_closed(), timeout=5)
    assert client.connection.close_code == 4401
    assert client.frames == []


async def test_bearer_header_is_accepted(gateway: Gateway, stack: Stack) -> None:
    client = await WsClient.connect(gateway.ws, None, additional_headers=bearer(stack.token("u2")))
    connected = await client.event("connected")
    assert connected["data"]["user_id"] == "u2"
    await client.close()


async def test_http_api_requires_a_valid_token(gateway: Gateway, stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/api/mentors")).status_code == 401
        expired = REFUSED["expired"]
        assert expired is not None
        bad = await http.get("/api/mentors", headers=bearer(expired))
        assert bad.status_code == 401
        good = await http.get("/api/mentors", headers=bearer(stack.token("u3")))
        assert good.status_code == 200
        assert good.json() == {"mentors": []}


async def test_help_templates_route(gateway: Gateway, stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/api/help/templates")).status_code == 401
        reply = await http.get("/api/help/templates", headers=bearer(stack.token("u4")))
    assert reply.status_code == 200
    body = reply.json()
    subjects = json.dumps(body)
    for subject in ("Math", "Programming", "Science", "General"):
        assert subject in subjects
    for urgency in ("low", "medium", "high"):
        assert urgency in subjects


async def test_health_readiness_and_metrics(gateway: Gateway, stack: Stack) -> None:
    client = await WsClient.connect(gateway.ws, stack.token("u5"))
    await client.event("mentor_status_snapshot")
    await client.request("ping", {})
    assert await client.error("warp", {}) == "unknown_event"
    await client.ack("get_mentors")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
    assert "im_gateway_connections 1.0" in metrics
    assert 'im_gateway_frames_in_total{event="ping"} 1.0' in metrics
    assert 'im_gateway_errors_total{code="unknown_event"} 1.0' in metrics
    assert "im_gateway_request_seconds_bucket" in metrics
    await client.close()


async def test_metrics_can_require_a_token_of_their_own(stack: Stack) -> None:
    gateway = stack.start_gateway(IM_METRICS_TOKEN="m" * 40)
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = bearer(stack.token("u1"))  # a user's token is not it
        assert (await http.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer " + "m" * 40}
        answered = await http.get("/metrics", headers=right)
        assert answered.status_code == 200 and "im_gateway_connections" in answered.text
        assert (await http.get("/healthz")).status_code == 200  # health stays open
