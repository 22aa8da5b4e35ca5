"""A minimal Socket.IO v5 / Engine.IO v4 client over a raw WebSocket, for the peer.

Written by hand on top of ``websockets`` (not python-socketio's client) so that driving the
peer costs the load generator the same as driving our gateway. What it speaks:

* Engine.IO: ``0{...}`` open (server → client), ``2`` ping answered with ``3`` pong,
  ``4`` message; one packet per WebSocket frame.
* Socket.IO inside ``4``: ``40{auth}`` connect (answered ``40{"sid"}`` or ``44{error}``),
  ``42<id?>["event", data]`` event, ``43<id>[args]`` acknowledgement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from bench.openloop.socket_client import SocketClient

EVENT = "42"
ACK = "43"
PING, PONG = "2", "3"


@dataclass(frozen=True)
class Packet:
    """An incoming event (``ack_id`` None) or acknowledgement (``name`` empty)."""

    name: str
    ack_id: int | None
    args: list[Any]


def _split_id(body: str) -> tuple[int | None, str]:
    """``"12[...]"`` → ``(12, "[...]")``; ``"[...]"`` → ``(None, "[...]")``."""
    digits = len(body) - len(body.lstrip("0123456789"))
    return (int(body[:digits]) if digits else None), body[digits:]


def parse(raw: str) -> Packet | None:
    if raw.startswith(EVENT):
        _, body = _split_id(raw[2:])
        name, *args = json.loads(body)
        return Packet(str(name), None, args)
    if raw.startswith(ACK):
        ack_id, body = _split_id(raw[2:])
        return Packet("", ack_id, json.loads(body))
    return None


async def open_socketio(
    url: str, auth: dict[str, Any], user_id: str, deflate: bool, ready: Callable[[str], bool]
) -> ClientConnection:
    """Open the WebSocket transport at ``url`` (``/socket.io/``, no query) and the default
    namespace with ``auth``; return once a packet is ``ready`` (pings answered meanwhile)."""
    ws = await websockets.connect(
        url + "?EIO=4&transport=websocket",
        max_size=None,
        ping_interval=None,
        compression="deflate" if deflate else None,
    )
    opened = str(await ws.recv())
    if not opened.startswith("0"):
        raise RuntimeError(f"{user_id}: expected an Engine.IO open packet, got {opened!r}")
    await ws.send("40" + json.dumps(auth))
    while True:
        raw = str(await ws.recv())
        if ready(raw):
            return ws
        if raw.startswith("44"):
            raise RuntimeError(f"{user_id}: connect refused: {raw[2:]}")
        if raw == PING:
            await ws.send(PONG)


class SocketIOClient(SocketClient[Packet]):
    @classmethod
    async def connect(
        cls, http_url: str, auth: dict[str, Any], user_id: str, deflate: bool
    ) -> SocketIOClient:
        """Open the WebSocket transport and the default namespace."""
        url = http_url.replace("http://", "ws://") + "/socket.io/"
        ws = await open_socketio(url, auth, user_id, deflate, lambda raw: raw.startswith("40"))
        return cls(ws, user_id)

    async def _decode(self, raw: str | bytes) -> Packet | None:
        if raw == PING:
            await self.ws.send(PONG)
            return None
        return parse(str(raw))

    async def emit(self, event: str, data: Any, ack_id: int | None = None) -> None:
        await self.ws.send(f"{EVENT}{'' if ack_id is None else ack_id}{json.dumps([event, data])}")
