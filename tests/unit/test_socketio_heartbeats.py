"""A Socket.IO client that has gone leaves no Engine.IO socket behind.

python-engineio sends each ping from a task that first sleeps a whole ping interval, holding
its socket that long; under churn that was thousands of closed sockets at once (the churn
soak, bench/soak). The gateway's Engine.IO server ends a socket's heartbeat when the client
is gone. Served here by uvicorn on a local socket (no broker), with a ping interval far longer
than the test: a socket still alive once its client is gone is one that only the heartbeat
keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
import websockets
from engineio.async_socket import AsyncSocket
from websockets.asyncio.client import ClientConnection

from services.gateway.engineio_server import EngineIOServer, SocketIOServer
from services.gateway.socketio_binding import NAMESPACE, SocketIOClient
from tests.support.stack import poll
from tools.rabbit import free_port

CLIENTS = 10
LONG_S = 600.0  # ping interval and timeout: no ping, and no timeout, within the test


class Served:
    def __init__(self, heartbeat_s: float = LONG_S) -> None:
        self.server = SocketIOServer(
            async_mode="asgi", ping_interval=heartbeat_s, ping_timeout=heartbeat_s
        )
        self.clients: dict[str, SocketIOClient] = {}
        self.server.on("connect", self.connect, namespace=NAMESPACE)
        self.server.on("disconnect", self.disconnect, namespace=NAMESPACE)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.clients[sid] = SocketIOClient(self.server, sid, queue_limit=100)

    async def disconnect(self, sid: str, reason: str | None = None) -> None:
        self.clients.pop(sid).end()  # as the binding does when a client is gone

    @property
    def engineio(self) -> EngineIOServer:
        eio = self.server.eio
        assert isinstance(eio, EngineIOServer)
        return eio


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, int]]:
    async with serving(Served()) as port:
        yield port


@contextlib.asynccontextmanager
async def serving(app: Served) -> AsyncIterator[tuple[Served, int]]:
    port = free_port()
    config = uvicorn.Config(
        socketio_asgi(app), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await poll(lambda: server.started, 10, "uvicorn to start")
    yield app, port
    server.should_exit = True
    await task


def socketio_asgi(app: Served) -> Any:
    return socketio.ASGIApp(app.server, socketio_path="socket.io")


async def _open(port: int) -> ClientConnection:
    """An Engine.IO WebSocket with the default namespace connected."""
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    ws = await websockets.connect(url)
    assert str(await ws.recv()).startswith("0")  # Engine.IO open
    await ws.send("40" + json.dumps({}))
    assert str(await ws.recv()).startswith("40")  # Socket.IO connected
    return ws


def _sockets_alive() -> int:
    gc.collect()
    return _sockets_tracked()


def _sockets_tracked() -> int:
    """Engine.IO sockets in memory: alive, or garbage in cycles not yet collected."""
    return sum(1 for o in gc.get_objects() if type(o) is AsyncSocket)


async def test_a_gone_client_s_socket_is_freed_without_waiting_for_its_next_ping(
    served: tuple[Served, int],
) -> None:
    app, port = served
    sockets = [await _open(port) for _ in range(CLIENTS)]
    await poll(lambda: len(app.clients) == CLIENTS, 5, "every client connected")
    assert app.engineio.heartbeats() == CLIENTS  # each socket has its next ping waiting
    assert _sockets_alive() == CLIENTS

    for ws in sockets:
        await ws.close()
    await poll(lambda: not app.clients, 5, "every client gone")
    await poll(lambda: _sockets_alive() == 0, 5, "no Engine.IO socket left")
    assert app.engineio.heartbeats() == 0


@pytest.mark.parametrize("leaving", ["close", "oversized packet"])
async def test_a_gone_client_s_socket_is_freed_without_a_full_collection(
    served: tuple[Served, int], leaving: str
) -> None:
    """Nothing of a socket is left in reference cycles, which would wait for the gateway's
    rare full collections (shared/gc_policy.py): with the collector off, every socket is
    still freed once its client has gone, or been cut off for a packet over the limit."""
    app, port = served
    gc.collect()
    gc.disable()
    try:
        sockets = [await _open(port) for _ in range(CLIENTS)]
        await poll(lambda: len(app.clients) == CLIENTS, 5, "every client connected")
        assert _sockets_tracked() == CLIENTS
        for ws in sockets:
            if leaving == "close":
                await ws.close()
            else:
                too_large = "x" * (app.engineio.max_http_buffer_size + 1)
                await ws.send("42" + json.dumps(["send_message", {"text": too_large}]))
        await poll(lambda: not app.clients, 5, "every client gone")
        for ws in sockets:
            await ws.close()
        await poll(lambda: _sockets_tracked() == 0, 5, "no Engine.IO socket left uncollected")
    finally:
        gc.enable()


async def test_a_long_polling_client_that_stops_polling_is_closed_after_the_ping_timeout() -> None:
    """The client monitor (the gateway's own, in place of python-engineio's) still drops a
    long-polling client that went silent; a WebSocket's own handler notices silence itself."""
    async with serving(Served(heartbeat_s=0.2)) as (app, port):
        url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
        async with httpx.AsyncClient() as http:
            opened = (await http.get(url)).text
            assert opened.startswith("0")
            sid = json.loads(opened[1:])["sid"]
            assert (await http.post(f"{url}&sid={sid}", content="40")).text == "OK"
            await poll(lambda: len(app.clients) == 1, 5, "the client connected")
        # no further poll: no pong to the ping the server sends after ping_interval
        await poll(lambda: not app.clients, 5, "the silent client dropped")
        await poll(lambda: sid not in app.server.eio.sockets, 5, "its socket forgotten")
