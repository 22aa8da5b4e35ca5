"""How a Socket.IO client is written to, with a fake python-socketio server (no I/O): pushes
become events, replies acknowledgements, and closes end the client as PROTOCOL §8 needs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import httpx

from services.gateway.sessions import Refusal, Sessions
from services.gateway.socketio_binding import GONE, SocketIOBinding, SocketIOClient, refused
from shared.protocol.envelope import dumps
from shared.settings import Settings


class FakeTransport:
    def __init__(self) -> None:
        self.sid = "eio1"
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


class FakeManager:
    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        return "eio1" if sid == "s1" else None


class FakeEngine:
    def __init__(self, transport: FakeTransport) -> None:
        self.sockets = {"eio1": transport}
        self.disconnected: list[str] = []
        self.heartbeats_ended: list[str] = []

    async def disconnect(self, sid: str) -> None:
        self.disconnected.append(sid)

    def end_heartbeat(self, sid: str) -> None:
        self.heartbeats_ended.append(sid)


class FakeServer:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.manager = FakeManager()
        self.eio = FakeEngine(self.transport)
        self.emitted: list[tuple[str, Any, str]] = []
        self.disconnected: list[str] = []

    async def emit(self, event: str, data: Any, to: str, namespace: str) -> None:
        self.emitted.append((event, data, to))

    async def disconnect(self, sid: str, namespace: str) -> None:
        self.disconnected.append(sid)


def client(limit: int = 4) -> tuple[SocketIOClient, FakeServer]:
    server = FakeServer()
    return SocketIOClient(server, "s1", limit), server


async def test_pushes_are_emitted_as_events_of_their_name() -> None:
    sio, server = client()
    await sio.send_text(dumps({"event": "connected", "data": {"user_id": "u1"}}))
    assert server.emitted == [("connected", {"user_id": "u1"}, "s1")]


async def test_replies_settle_the_acknowledgement_of_their_request() -> None:
    sio, server = client()
    first_ref, first = sio.expect_reply()
    second_ref, second = sio.expect_reply()
    assert first_ref != second_ref
    error = {"code": "not_found", "message": "no such call", "event": "end_call"}
    await sio.send_text(dumps({"event": "error", "ref": second_ref, "data": error}))
    await sio.send_text(dumps({"event": "ack", "ref": first_ref, "data": {"seq": 3}}))
    await sio.send_text(dumps({"event": "ack", "ref": "sio999", "data": {}}))  # nobody waits
    assert first.result() == {"ok": True, "data": {"seq": 3}}
    assert second.result() == {
        "ok": False,
        "error": {"code": "not_found", "message": "no such call"},
    }
    assert server.emitted == []  # replies are never events


async def test_a_client_with_a_full_engineio_queue_is_dropped_not_written_to() -> None:
    sio, server = client(limit=2)
    dropped: list[bool] = []
    sio.on_slow = lambda: dropped.append(True)
    server.transport.queue.put_nowait("unread")
    await sio.send_text(dumps({"event": "user_typing", "data": {}}))
    assert not dropped and len(server.emitted) == 1
    server.transport.queue.put_nowait("unread")
    await sio.send_text(dumps({"event": "user_typing", "data": {}}))
    assert dropped == [True] and len(server.emitted) == 1


async def test_final_closes_disconnect_and_others_end_the_transport() -> None:
    sio, server = client()
    await sio.close(4401)
    await sio.close(4429)
    assert server.disconnected == ["s1", "s1"] and server.eio.disconnected == []
    await sio.close(1001)  # going away: the client comes back with its own backoff
    assert server.eio.disconnected == ["eio1"]
    assert server.transport.queue.get_nowait() is None  # the WebSocket writer ends


async def test_requests_waiting_when_the_client_goes_get_unavailable() -> None:
    sio, server = client()
    _, waiting = sio.expect_reply()
    sio.end()
    assert sio.gone.done() and sio.reading.done() and waiting.result() == GONE
    assert server.eio.heartbeats_ended == ["eio1"]  # Engine.IO pings it no more
    assert GONE["error"]["code"] == "unavailable"  # type: ignore[index]


def test_a_refusal_is_a_connect_error_with_code_and_message() -> None:
    error = refused(Refusal(1013, "server busy; retry_after_ms=250", retry_after_ms=250))
    # socket.io-client: err.message, and err.data = {code, message}
    assert error.error_args == {
        "message": "server busy; retry_after_ms=250",
        "data": {"code": 1013, "message": "server busy; retry_after_ms=250", "retry_after_ms": 250},
    }


async def test_a_stopping_gateway_refuses_new_engineio_sessions_only() -> None:
    """Below Socket.IO, so that socket.io-client retries by itself (a connect_error would
    stop it): the client comes back to another gateway, or to this one restarted."""
    sessions = SimpleNamespace(settings=Settings(jwt_secret="s" * 40), stopping=False)
    binding = SocketIOBinding(cast(Sessions, sessions))
    transport = httpx.ASGITransport(app=binding.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        opened = await http.get("/socket.io/?EIO=4&transport=polling")
        assert opened.status_code == 200 and opened.text.startswith("0{")
        sessions.stopping = True
        refused_new = await http.get("/socket.io/?EIO=4&transport=polling")
        assert (refused_new.status_code, refused_new.text) == (503, "gateway restarting")
        open_one = await http.get("/socket.io/?EIO=4&transport=polling&sid=unknown")
        assert open_one.status_code != 503  # Engine.IO's own answer for a session it holds
