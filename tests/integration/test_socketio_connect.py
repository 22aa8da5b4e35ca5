"""PROTOCOL §8, the connection: the token (auth payload, query, header), refusals as
``connect_error`` with the code /ws closes with, both transports, the limits /ws has, token
expiry, and socket.io-client's own reconnection after a gateway restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jwt
import pytest

from shared.auth import issue_token
from tests.support.broker import Broker
from tests.support.client import WsClient
from tests.support.socketio_client import SioClient
from tests.support.stack import JWT_SECRET, SMALL_RATE_BUDGET, Gateway, Stack


@pytest.fixture(scope="module")
def module_stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Path(tmp_path_factory.mktemp("socketio-connect"))
    with Stack.running(broker.url, base, {"presence": {}, "chat": {}}) as running:
        yield running


@pytest.fixture
async def clients() -> AsyncIterator[list[SioClient]]:
    started: list[SioClient] = []
    yield started
    await asyncio.gather(*(c.close() for c in started), return_exceptions=True)


def user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("via", ["auth", "query", "header"])
async def test_the_token_is_taken_from_auth_query_or_header(
    module_stack: Stack, gw: Gateway, clients: list[SioClient], via: str
) -> None:
    alice = user("alice")
    client = await SioClient.start(gw.http, module_stack.token(alice, "mentor", "Al"), via=via)
    clients.append(client)
    early = await client.emit("ping")  # buffered by socket.io-client, sent once it connects
    connected = await client.connected()
    assert (connected["user_id"], connected["role"], connected["name"]) == (alice, "mentor", "Al")
    assert connected["protocol_version"] == 1 and connected["heartbeat_interval_s"] == 20
    # a mentor's snapshot comes from presence, once it has taken the connection in
    await client.event("mentor_status_snapshot")
    first = next(r for r in client.reports if r["type"] == "event")
    assert first["name"] == "connected"  # the first event, as the first frame on /ws
    pong = await client.wait_for(lambda r: r["type"] == "ack" and r["seq"] == early)
    assert pong["args"][0]["ok"] is True
    assert client.reports.index(pong) > client.reports.index(first)  # handled once set up


REFUSED = {
    "missing": None,
    "expired": issue_token("u1", "student", JWT_SECRET, ttl_s=-10),
    "bad_signature": issue_token("u1", "student", "another-secret-0123456789abcdef-0123"),
    "unknown_role": jwt.encode(
        {"sub": "u1", "role": "admin", "exp": int(time.time()) + 600}, JWT_SECRET, "HS256"
    ),
    "garbage": "not-a-jwt",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_refused_tokens_get_connect_error_4401(
    gw: Gateway, clients: list[SioClient], case: str
) -> None:
    client = await SioClient.start(gw.http, REFUSED[case], reconnection=False)
    clients.append(client)
    refusal = await client.report("connect_error")
    assert refusal["data"]["code"] == 4401
    assert refusal["data"]["message"] == refusal["message"] and refusal["message"]
    assert not any(r["type"] in ("connect", "event") for r in client.reports)


async def test_errors_are_acknowledged_and_the_connection_stays(
    module_stack: Stack, gw: Gateway, clients: list[SioClient]
) -> None:
    client = await SioClient.start(gw.http, module_stack.token(user("eve")))
    clients.append(client)
    await client.connected()
    assert await client.error("warp", {}) == "unknown_event"
    assert await client.error("send_message", "not an object") == "invalid_payload"
    assert await client.error("send_message", {"recipient_id": "bob"}) == "invalid_payload"
    huge = {"recipient_id": "bob", "text": "x" * (65 * 1024)}
    assert await client.error("send_message", huge) == "payload_too_large"
    assert await client.error("mentor_available", {}) == "forbidden"
    # without an acknowledgement callback nothing comes back, not even the error
    await client.emit("warp", {}, ack=False)
    pong = await client.ack("ping")
    assert pong["server_time"].endswith("Z")
    assert not any(r["type"] == "disconnect" for r in client.reports)
    assert not any(r["type"] == "event" and r["name"] == "error" for r in client.reports)


async def test_long_polling_only(
    module_stack: Stack, gw: Gateway, clients: list[SioClient]
) -> None:
    alice, bob = user("alice"), user("bob")
    polling = await SioClient.start(gw.http, module_stack.token(alice), transports=["polling"])
    clients.append(polling)
    await polling.connected()
    assert (await polling.report("connect"))["transport"] == "polling"
    ws = await WsClient.connect(gw.ws, module_stack.token(bob))
    try:
        await ws.event("connected")
        await ws.request("ping")
        sent = await polling.ack("send_message", {"recipientId": bob, "text": "by polling"})
        got = (await ws.event("message_received", message_id=sent["message_id"]))["data"]
        assert got["sender_id"] == alice
        reply = await ws.ack("send_message", {"recipient_id": alice, "text": "pushed back"})
        pushed = await polling.event("message_received", message_id=reply["message_id"])
        assert pushed["text"] == "pushed back"
    finally:
        await ws.close()
    assert not any(r["type"] == "upgrade" for r in polling.reports)


async def test_polling_upgrades_to_websocket(
    module_stack: Stack, gw: Gateway, clients: list[SioClient]
) -> None:
    client = await SioClient.start(
        gw.http, module_stack.token(user("uma")), transports=["polling", "websocket"]
    )
    clients.append(client)
    await client.connected()
    assert (await client.report("open"))["transport"] == "polling"
    assert (await client.report("upgrade"))["transport"] == "websocket"
    assert "mentors" in await client.ack("get_mentors")


async def test_the_connection_ends_with_its_token(
    module_stack: Stack, gw: Gateway, clients: list[SioClient]
) -> None:
    """At the token's exp the server disconnects the client (4401 on /ws), which
    socket.io-client does not retry: the app reconnects with a fresh token."""
    name = user("tia")
    client = await SioClient.start(gw.http, issue_token(name, "student", JWT_SECRET, ttl_s=5))
    clients.append(client)
    await client.connected()
    gone = await client.report("disconnect", timeout=15)
    assert gone["reason"] == "io server disconnect"
    await client.connect_again(module_stack.token(name))
    await client.report("connect", after=client.reports.index(gone))
    await client.event("connected", after=client.reports.index(gone))
    assert not any(r["type"] == "reconnect_attempt" for r in client.reports)


async def test_the_per_user_cap_and_rate_budget_span_both_bindings(stack: Stack) -> None:
    gateway = stack.start_gateway(SMALL_RATE_BUDGET, IM_MAX_CONNECTIONS_PER_USER="2")
    token = stack.token("alice")
    ws = await WsClient.connect(gateway.ws, token)
    sio = await SioClient.start(gateway.http, token)
    extra: SioClient | None = None
    try:
        await ws.event("connected")
        await sio.connected()
        extra = await SioClient.start(gateway.http, token, reconnection=False)  # the third
        refusal = await extra.report("connect_error")
        assert refusal["data"] == {"code": 4429, "message": "too many connections for this user"}
        extra_ws = await WsClient.connect(gateway.ws, token)
        await asyncio.wait_for(extra_ws.connection.wait_closed(), 5)
        assert extra_ws.connection.close_code == 4429

        # 10 per socket, 15 for the user: the Socket.IO socket spends 10, /ws gets 5 more
        replies = [await sio.request("ping") for _ in range(11)]
        assert [r["ok"] for r in replies] == [True] * 10 + [False]
        assert replies[-1]["error"]["code"] == "rate_limited"
        codes = [(await ws.request("ping"))["event"] for _ in range(6)]
        assert codes == ["pong"] * 5 + ["error"]
    finally:
        await ws.close()
        await sio.close()
        if extra is not None:
            await extra.close()


async def test_socketio_clients_reconnect_after_a_gateway_restart(stack: Stack) -> None:
    """socket.io-client's own backoff brings the client back to the restarted gateway, with
    a new session; a message sent to it while it was away arrives."""
    stack.start_service("presence")
    stack.start_service("chat")
    gateway = stack.start_gateway()
    sio = await SioClient.start(
        gateway.http, stack.token("alice"), reconnectionDelay=200, reconnectionDelayMax=1000
    )
    try:
        first = await sio.connected()
        await sio.ack("ping")
        gateway.process.terminate()  # SIGTERM: the gateway closes its connections and stops
        assert not gateway.process.alive()
        lost = await sio.report("disconnect")
        assert lost["reason"] in ("transport close", "transport error")
        await sio.report("reconnect_attempt")

        restarted = stack.start_gateway(port=gateway.port)
        bob = await WsClient.connect(restarted.ws, stack.token("bob"))
        sent = await bob.ack("send_message", {"recipient_id": "alice", "text": "while away"})
        await sio.report("reconnect", timeout=20)
        again = await sio.event("connected", after=sio.reports.index(lost))
        assert again["connection_id"] != first["connection_id"]
        caught_up = await sio.event("message_received", message_id=sent["message_id"])
        assert caught_up["text"] == "while away"
        reply = await sio.ack("send_message", {"recipientId": "bob", "text": "back"})
        await bob.event("message_received", message_id=reply["message_id"])
        await bob.close()
    finally:
        await sio.close()


async def test_a_message_over_the_hard_limit_is_not_read(
    module_stack: Stack, gw: Gateway, clients: list[SioClient]
) -> None:
    """What /ws closes with 1009 (over 1 MiB) Engine.IO does not read: the transport ends,
    and the client comes back by itself."""
    client = await SioClient.start(
        gw.http, module_stack.token(user("hal")), reconnectionDelay=100, reconnectionDelayMax=500
    )
    clients.append(client)
    await client.connected()
    await client.emit("send_message", {"recipient_id": "bob", "text": "x" * (1100 * 1024)})
    gone = await client.report("disconnect")
    assert gone["reason"] in ("transport close", "transport error")
    await client.report("reconnect")
    assert (await client.ack("ping"))["server_time"]
    assert not any(r["type"] == "ack" and r["seq"] == 1 for r in client.reports)
