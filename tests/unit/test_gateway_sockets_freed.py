"""A closed WebSocket is freed by its last reference going, not left to the garbage collector.

The gateway looks at the collector's oldest generation rarely (shared/gc_policy.py), so a
connection kept alive by a reference cycle would stay in memory until then (under churn, from
1.4 to 20 KiB per connection, by the cycles found so far). uvicorn serves here with the
gateway's own protocol classes, on a local socket (no broker), while the collector is off:
whatever a closed connection leaves alive (uvicorn's two protocols, websockets' sans-I/O
protocol) is what only a collection would have freed.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.server import ServerProtocol

from services.gateway.wire import PREBUILT_FRAMES, GatewayHttpProtocol, GatewayWebSocketProtocol
from tests.support.stack import poll
from tools.rabbit import free_port

CLIENTS = 20


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts, writes one prebuilt frame, and waits for the client to go."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    write = scope["extensions"][PREBUILT_FRAMES]["write"]
    write(b"\x81\x02hi")  # one unmasked text frame
    while (await receive())["type"] != "websocket.disconnect":
        pass


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
async def server() -> AsyncIterator[uvicorn.Server]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=GatewayHttpProtocol,
        ws=GatewayWebSocketProtocol,
        log_config=None,
        lifespan="off",
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    await poll(lambda: served.started, 10, "uvicorn to start")
    yield served
    served.should_exit = True
    await task


def _alive() -> list[object]:
    kinds = (GatewayHttpProtocol, GatewayWebSocketProtocol, ServerProtocol)
    return [o for o in gc.get_objects() if type(o) in kinds]  # type(): proxies may be dead


async def test_closed_websockets_leave_no_protocol_behind(
    server: uvicorn.Server, collector_off: None
) -> None:
    port = server.config.port
    for _ in range(CLIENTS):
        async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            assert await ws.recv() == "hi"
    await poll(lambda: not server.server_state.connections, 10, "every connection to be lost")
    await poll(lambda: not _alive(), 10, "no protocol to outlive its connection")
