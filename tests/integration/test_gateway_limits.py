"""PROTOCOL v1.1 §1–2: at most IM_MAX_CONNECTIONS_PER_USER sockets per user (close 4429), and
a rate budget per user over all their sockets, so ten sockets do not buy ten budgets."""

from __future__ import annotations

import asyncio

from tests.support.client import WsClient
from tests.support.stack import SMALL_RATE_BUDGET, Stack


async def test_one_socket_too_many_is_refused_with_4429(stack: Stack) -> None:
    gateway = stack.start_gateway(IM_MAX_CONNECTIONS_PER_USER="3")
    sockets = []
    for _ in range(3):
        client = await WsClient.connect(gateway.ws, stack.token("alice"))
        await client.event("connected")
        sockets.append(client)
    extra = await WsClient.connect(gateway.ws, stack.token("alice"))
    await extra.connection.wait_closed()
    assert extra.connection.close_code == 4429 and not extra.frames
    other = await WsClient.connect(gateway.ws, stack.token("bob"))  # others are not affected
    await other.event("connected")
    await sockets.pop().close()
    again = await WsClient.connect(gateway.ws, stack.token("alice"))  # room again
    await again.event("connected")
    for client in (*sockets, other, again):
        await client.close()


async def test_the_cap_holds_over_all_gateways(stack: Stack) -> None:
    """Each gateway counts its own sockets at the handshake; presence sees every gateway's
    and has the newest past the cap closed with 4429 (just after its ``connected``). A
    mentor's snapshot comes from presence once it has taken the connection in: so the test
    knows what presence has seen."""
    stack.start_service("presence", IM_MAX_CONNECTIONS_PER_USER="2")
    first = stack.start_gateway(IM_MAX_CONNECTIONS_PER_USER="2")
    second = stack.start_gateway(IM_MAX_CONNECTIONS_PER_USER="2")
    token = stack.token("m1", "mentor", "Maya")
    kept = []
    for _ in range(2):
        client = await WsClient.connect(first.ws, token)
        await client.event("mentor_status_snapshot")
        kept.append(client)
    extra = await WsClient.connect(second.ws, token)  # the second gateway holds none of hers
    await extra.event("connected")
    await asyncio.wait_for(extra.connection.wait_closed(), 10)
    assert extra.connection.close_code == 4429
    assert extra.connection.close_reason == "too many connections for this user"
    assert not extra.count("mentor_status_snapshot")
    for client in kept:  # the two taken in first keep working
        await client.request("ping")
    await kept.pop().close()
    again = await _admitted_within(second.ws, token, 10)  # room again, once presence knows
    await again.request("ping")
    for client in (*kept, again):
        await client.close()


async def _admitted_within(url: str, token: str, timeout_s: float) -> WsClient:
    """Connect until presence takes the socket in (its snapshot), not closing it with 4429."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        client = await WsClient.connect(url, token)
        try:
            await client.event("mentor_status_snapshot", timeout=5)
            return client
        except AssertionError:
            assert client.connection.close_code == 4429, client.connection.close_code
            assert asyncio.get_running_loop().time() < deadline, "never admitted again"


async def test_the_rate_budget_is_per_user_across_sockets(stack: Stack) -> None:
    gateway = stack.start_gateway(SMALL_RATE_BUDGET)
    phone = await WsClient.connect(gateway.ws, stack.token("alice"))
    laptop = await WsClient.connect(gateway.ws, stack.token("alice"))
    for client in (phone, laptop):
        await client.event("connected")
    replies = [await phone.request("ping", {}) for _ in range(10)]  # the phone's own burst
    replies += [await laptop.request("ping", {}) for _ in range(10)]  # only 5 left for alice
    kinds = [r["event"] for r in replies]
    assert kinds == ["pong"] * 15 + ["error"] * 5, kinds
    assert {r["data"]["code"] for r in replies[15:]} == {"rate_limited"}
    bob = await WsClient.connect(gateway.ws, stack.token("bob"))
    await bob.event("connected")
    assert (await bob.request("ping", {}))["event"] == "pong"
    for client in (phone, laptop, bob):
        await client.close()


async def test_the_rate_budget_is_split_over_the_gateways_a_user_is_on(stack: Stack) -> None:
    """Presence tells every gateway holding a user's sockets over how many gateways they
    are; each allows that share, so ten gateways do not buy ten budgets either."""
    limits = {"IM_USER_RATE_LIMIT_PER_S": "0.01", "IM_USER_RATE_LIMIT_BURST": "10"}
    stack.start_service("presence")
    first, second = stack.start_gateway(limits), stack.start_gateway(limits)
    token = stack.token("m1", "mentor", "Maya")  # a mentor's snapshot comes from presence
    phone = await WsClient.connect(first.ws, token)
    await phone.event("mentor_status_snapshot")
    laptop = await WsClient.connect(second.ws, token)
    await laptop.event("mentor_status_snapshot")  # presence has seen both gateways
    # a round trip through presence on each: its word on the spread came before the reply
    for client in (phone, laptop):
        assert (await client.request("get_mentors"))["event"] == "ack"
    replies = [await phone.request("ping") for _ in range(10)]
    replies += [await laptop.request("ping") for _ in range(10)]
    passed = sum(1 for r in replies if r["event"] == "pong")
    # a share of 5 per gateway, less what get_mentors took if it came after the share did;
    # with a whole budget on each, 18 would pass
    assert 8 <= passed <= 10, [r["event"] for r in replies]
    assert {r["data"]["code"] for r in replies if r["event"] == "error"} == {"rate_limited"}
    for client in (phone, laptop):
        await client.close()
