"""SDK connection behaviour against a scripted in-process WebSocket server (no broker).

The fake gateway lets a test decide exactly when a connection breaks, goes silent, or what
it pushes, which a real gateway cannot do on demand: dead-connection detection, requests
across a drop, the ``sync`` sent after a reconnect, dedupe, receipts, refused tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from http import HTTPStatus
from typing import Any

import instantmentor_client as sdk
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.stack import poll

Frame = dict[str, Any]
Script = Callable[["FakeGateway", ServerConnection, int], Awaitable[None]]


class FakeGateway:
    """Runs ``script(gateway, socket, n)`` for the n-th connection (from 1); records every
    client frame per connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.frames: dict[int, list[Frame]] = {}
        self.changed = asyncio.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def _handle(self, ws: ServerConnection) -> None:
        async with self.changed:
            self.connections += 1
            n = self.connections
            self.frames[n] = []
            self.changed.notify_all()
        with suppress(ConnectionClosed):  # the client going away is part of the scripts
            await self.script(self, ws, n)

    async def record(self, n: int, frame: Frame) -> None:
        async with self.changed:
            self.frames[n].append(frame)
            self.changed.notify_all()

    async def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), timeout)

    def sent(self, event: str) -> list[tuple[int, Frame]]:
        return [(n, f) for n, fs in self.frames.items() for f in fs if f["event"] == event]


@asynccontextmanager
async def fake_gateway(script: Script, process_request: Any = None) -> AsyncIterator[FakeGateway]:
    gateway = FakeGateway(script)
    async with serve(gateway._handle, "127.0.0.1", 0, process_request=process_request) as server:
        gateway.port = server.sockets[0].getsockname()[1]
        yield gateway


def connected(n: int, heartbeat_interval_s: float = 20) -> str:
    return json.dumps(
        {
            "event": "connected",
            "data": {
                "user_id": "bob",
                "role": "student",
                "name": "Bob",
                "connection_id": f"conn-{n}",
                "server_time": "2024-01-01T00:00:00Z",
                "heartbeat_interval_s": heartbeat_interval_s,
                "protocol_version": 1,
            },
        }
    )


def message(seq: int, sender: str = "alice") -> str:
    return json.dumps(
        {
            "event": "message_received",
            "data": {
                "message_id": f"m{seq}",
                "conversation_id": "c1",
                "seq": seq,
                "sender_id": sender,
                "sender_name": sender.title(),
                "recipient_id": "bob" if sender != "bob" else "alice",
                "text": f"text {seq}",
                "sent_at": "2024-01-01T00:00:00Z",
                "client_msg_id": None,
                "call_id": None,
            },
        }
    )


REPLIES: dict[str, Frame] = {
    "get_mentors": {"mentors": []},
    "ping": {"server_time": "2024-01-01T00:00:01Z"},
}


async def answer(gateway: FakeGateway, ws: ServerConnection, n: int, drop_on: str = "") -> None:
    """Record and acknowledge every frame; close abruptly on the first ``drop_on`` event."""
    async for raw in ws:
        frame = json.loads(raw)
        await gateway.record(n, frame)
        if frame["event"] == drop_on:
            ws.transport.abort()
            return
        reply = "pong" if frame["event"] == "ping" else "ack"
        data = REPLIES.get(frame["event"], {})
        await ws.send(json.dumps({"event": reply, "ref": frame.get("ref"), "data": data}))


def client(url: str, **options: Any) -> sdk.InstantMentorClient:
    options.setdefault("backoff_base", 0.01)
    options.setdefault("backoff_cap", 0.05)
    options.setdefault("request_timeout", 5)
    return sdk.InstantMentorClient(url, token="t", **options)


async def test_a_silent_connection_is_declared_dead_and_replaced() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.send(connected(n, heartbeat_interval_s=0.2))
        async for raw in ws:  # read pings, never answer: the connection looks dead
            await gateway.record(n, json.loads(raw))

    async with fake_gateway(script) as gateway:
        im = client(gateway.url)
        lost = im.events("disconnected")
        await im.connect()
        await gateway.wait(lambda: gateway.connections >= 2)
        event = await lost.next(timeout=5)
        assert event.data["reconnecting"] is True
        assert "heartbeat" in event.data["reason"]
        assert im.stats.dead_connections >= 1
        assert gateway.sent("ping") and gateway.sent("ping")[0][0] == 1
        await im.wait_connected(timeout=5)
        assert im.session is not None and im.session.connection_id == f"conn-{gateway.connections}"
        await im.close()


async def test_a_healthy_connection_survives_many_heartbeats() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.send(connected(n, heartbeat_interval_s=0.05))
        await answer(gateway, ws, n)

    async with fake_gateway(script) as gateway:
        im = client(gateway.url)
        await im.connect()
        await gateway.wait(lambda: len(gateway.sent("ping")) >= 6)
        assert gateway.connections == 1 and im.stats.dead_connections == 0 and im.connected
        await im.close()


async def test_requests_across_a_dropped_connection() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.send(connected(n))
        await answer(gateway, ws, n, drop_on="get_mentors" if n == 1 else "accept_call")

    async with fake_gateway(script) as gateway:
        im = client(gateway.url)
        await im.connect()
        # idempotent: resent on the next connection, the caller just gets the answer
        assert await im.get_mentors() == []
        assert [n for n, _ in gateway.sent("get_mentors")] == [1, 2]
        # not idempotent: the outcome is unknown, the caller is told
        with pytest.raises(sdk.ConnectionLost) as lost:
            await im.accept_call("call-1")
        assert lost.value.event == "accept_call" and isinstance(lost.value, sdk.Unavailable)
        assert len(gateway.sent("accept_call")) == 1  # never resent
        await im.close()
        with pytest.raises(sdk.ClientClosed):
            await im.ping()


async def dropped_on_end_call(
    gateway: FakeGateway, attempts: list[sdk.ReconnectAttempt]
) -> sdk.InstantMentorClient:
    """A client whose first connection drops on ``end_call`` (as the script does), once it
    has tried to connect twice more; its reconnection attempts go to ``attempts``."""
    im = client(gateway.url, on_reconnect_attempt=attempts.append)
    await im.connect()
    with pytest.raises(sdk.ConnectionLost):
        await im.end_call("c")
    await gateway.wait(lambda: gateway.connections >= 3)
    return im


async def test_while_disconnected_requests_wait_then_raise_not_connected() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(connected(n))
            await answer(gateway, ws, n, drop_on="end_call")
        else:
            await ws.close(1013, "try again later")  # every reconnection fails

    async with fake_gateway(script) as gateway:
        attempts: list[sdk.ReconnectAttempt] = []
        im = await dropped_on_end_call(gateway, attempts)
        assert not im.connected
        with pytest.raises(sdk.NotConnected) as waited:
            await im.reject_call("c", timeout=0.3)
        assert waited.value.event == "reject_call"
        assert gateway.sent("reject_call") == []  # never sent
        assert len(attempts) >= 2 and all(a.delay <= a.ceiling <= 0.05 for a in attempts)
        assert isinstance(attempts[-1].error, sdk.NotConnected)
        await im.close()


async def test_a_busy_server_s_retry_hint_is_honoured_with_jitter_never_sooner() -> None:
    """Close 1013 with retry_after_ms (a connect storm): the next attempt waits at least that
    long, and at most half as long again, instead of the (much shorter) backoff."""

    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        if n in (1, 3):
            await ws.send(connected(n))
            await answer(gateway, ws, n, drop_on="end_call")
        else:
            await ws.close(1013, "server busy; retry_after_ms=300")

    async with fake_gateway(script) as gateway:
        attempts: list[sdk.ReconnectAttempt] = []
        im = await dropped_on_end_call(gateway, attempts)
        await im.wait_connected(timeout=5)
        first, second = attempts[:2]
        assert first.delay <= first.ceiling <= 0.05, "a plain drop: the usual backoff"
        assert isinstance(second.error, sdk.ServerBusy)
        assert second.error.retry_after_s == 0.3
        assert 0.3 <= second.delay <= second.ceiling == pytest.approx(0.45)
        await im.close()


async def test_after_a_reconnect_it_syncs_from_the_watermark_and_drops_duplicates() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.send(connected(n))
        if n == 1:
            for seq in (1, 2, 4):  # 3 is lost
                await ws.send(message(seq))
        async for raw in ws:
            frame = json.loads(raw)
            await gateway.record(n, frame)
            if n == 1 and frame["event"] == "message_delivered" and frame["data"]["up_to_seq"] == 2:
                ws.transport.abort()  # the receipt below the gap arrived: now break
                return
            await ws.send(json.dumps({"event": "ack", "ref": frame.get("ref"), "data": {}}))
            if frame["event"] == "sync":  # everything after the watermark, and a repeat
                for seq in (2, 3, 4, 4):
                    await ws.send(message(seq))

    async with fake_gateway(script) as gateway:
        im = client(gateway.url, gap_fill_delay=60)
        stream = im.events("message_received")
        await im.connect()
        got = [(await stream.next(timeout=5)).data["seq"] for _ in range(4)]
        assert got == [1, 2, 4, 3]
        syncs = gateway.sent("sync")
        assert [(n, f["data"]) for n, f in syncs] == [(2, {"since": {"c1": 2}})]
        assert im.watermarks == {"c1": 4}
        # receipts: up to 2 (below the gap) on the first connection, then up to 4
        await gateway.wait(
            lambda: any(f["data"]["up_to_seq"] == 4 for _, f in gateway.sent("message_delivered"))
        )
        receipts = [(n, f["data"]["up_to_seq"]) for n, f in gateway.sent("message_delivered")]
        assert (1, 2) in receipts and receipts[-1] == (2, 4)
        assert all(seq in (1, 2) for n, seq in receipts if n == 1)
        await poll(lambda: im.stats.duplicates_dropped == 3, 5, "the sync's duplicates")  # 2, 4, 4
        await im.close()
        assert [e.data["seq"] async for e in stream] == []  # nothing more, and the stream ended


async def test_a_gap_left_open_is_filled_by_sync_without_a_reconnect() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.send(connected(n))
        await ws.send(message(1))
        await ws.send(message(3))
        async for raw in ws:
            frame = json.loads(raw)
            await gateway.record(n, frame)
            await ws.send(json.dumps({"event": "ack", "ref": frame.get("ref"), "data": {}}))
            if frame["event"] == "sync":
                await ws.send(message(2))
                await ws.send(message(3))

    async with fake_gateway(script) as gateway:
        im = client(gateway.url, gap_fill_delay=0.05, auto_ack_delivery=False)
        stream = im.events("message_received")
        await im.connect()
        got = [(await stream.next(timeout=5)).data["seq"] for _ in range(3)]
        assert got == [1, 3, 2]
        assert [f["data"] for _, f in gateway.sent("sync")] == [{"since": {"c1": 1}}]
        assert im.stats.gap_syncs == 1 and im.tracker.gaps() == {}
        assert gateway.sent("message_delivered") == []  # auto_ack_delivery=False
        await im.close()


async def test_a_refused_token_is_authentication_failed_and_not_retried() -> None:
    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        await ws.close(4401, "token expired")

    async with fake_gateway(script) as gateway:
        im = client(gateway.url)
        with pytest.raises(sdk.AuthenticationFailed, match="token expired"):
            await im.connect()
        assert gateway.connections == 1

    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.UNAUTHORIZED, "no\n")

    async with fake_gateway(script, process_request=refuse) as gateway:
        with pytest.raises(sdk.AuthenticationFailed, match="401"):
            await client(gateway.url).connect()


async def test_a_token_revoked_while_reconnecting_closes_the_client() -> None:
    tokens = iter(["good", "revoked"])

    async def script(gateway: FakeGateway, ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(connected(n))
            await answer(gateway, ws, n, drop_on="ping")
        else:
            await ws.close(4401, "bad signature")

    async with fake_gateway(script) as gateway:
        im = sdk.InstantMentorClient(
            gateway.url, token_provider=lambda: next(tokens), backoff_base=0.01
        )
        closed = im.events("closed")
        await im.connect()
        with pytest.raises(sdk.ConnectionLost):
            await im.request("ping")  # retry=False: the drop is reported
        event = await closed.next(timeout=5)
        assert event.data == {"code": "unauthorized", "reason": "bad signature"}
        assert im.closed and gateway.connections == 2
        with pytest.raises(sdk.AuthenticationFailed):
            await im.get_mentors()
        await im.close()
