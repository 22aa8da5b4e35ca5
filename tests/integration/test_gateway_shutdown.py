"""A gateway stopping (SIGTERM, a rolling deploy): every socket is closed with 1001, and a
client reconnecting at once is turned away (1012, or no listener) instead of being set up on
a gateway about to go — it must go to another one."""

from __future__ import annotations

import asyncio
import signal

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage

from tests.support.client import WsClient
from tests.support.stack import Stack, poll


async def _attempt(url: str) -> str:
    """One reconnection: ``connected``, a close code, or ``refused`` (nobody listens)."""
    try:
        socket = await websockets.connect(url, open_timeout=5)
    except (OSError, InvalidHandshake, InvalidMessage, TimeoutError):
        return "refused"
    try:
        frame = await socket.recv()
        return "connected" if '"connected"' in str(frame) else str(frame)
    except ConnectionClosed as exc:
        return str(exc.rcvd.code) if exc.rcvd is not None else "refused"
    finally:
        await socket.close()


async def test_a_stopping_gateway_closes_everyone_with_1001_and_admits_no_one(
    stack: Stack,
) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway()
    clients = []
    for i in range(100):
        client = await WsClient.connect(gateway.ws, stack.token(f"s{i}"))
        await client.event("connected")
        clients.append(client)

    async def reconnect_when_closed(client: WsClient, user: str) -> str:
        """What a client gets that tries again the moment its socket closes."""
        await poll(lambda: client.closed_code is not None, 20, f"close of {user}'s socket")
        return await _attempt(f"{gateway.ws}?token={stack.token(user)}")

    eager = [asyncio.create_task(reconnect_when_closed(c, f"s{i}")) for i, c in enumerate(clients)]
    gateway.process.popen.send_signal(signal.SIGTERM)
    outcomes = await asyncio.gather(*eager)
    # uvicorn re-raises the signal once it has shut down cleanly
    assert gateway.process.popen.wait(15) in (0, -signal.SIGTERM)
    assert {c.closed_code for c in clients} == {1001}
    assert "connected" not in outcomes, outcomes
    assert set(outcomes) <= {"1012", "refused"}, outcomes
