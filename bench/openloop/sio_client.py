"""A minimal Socket.IO v5 / Engine.IO v4 client over a raw WebSocket, for the peer.

Written by hand on top of ``websockets`` (not python-socketio's client) so that driving the
peer costs the load generator the same as driving our gateway. What it speaks:

* Engine.IO: ``0{...}`` open (server → client), ``2`` ping answered with ``3`` pong,
  ``4`` message; one packet per WebSocket frame.
* Socket.IO inside ``4``: ``40{auth}`` connect (answered ``40{"sid"}`` or ``44{error}``),
  ``42<id?>["event", data]`` event, ``43<id>[args]`` acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from bench.openloop.schedule import now
from bench.openloop.waiters import Waiters

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


class SocketIOClient:
    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.on_packet: Callable[[Packet, float], None] | None = None  # measured traffic
        self.on_close: Callable[[str], None] | None = None
        self._waiters: Waiters[Packet] = Waiters()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, http_url: str, auth: dict[str, Any], user_id: str, deflate: bool
    ) -> SocketIOClient:
        """Open the WebSocket transport and the default namespace."""
        ws = await websockets.connect(
            http_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
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
            if raw.startswith("40"):
                return cls(ws, user_id)
            if raw.startswith("44"):
                raise RuntimeError(f"{user_id}: connect refused: {raw[2:]}")
            if raw == PING:
                await ws.send(PONG)

    async def _read(self) -> None:
        reason = "closed by client"
        try:
            async for raw in self.ws:
                at = now()
                if raw == PING:
                    await self.ws.send(PONG)
                    continue
                packet = parse(str(raw))
                if packet is None:
                    continue
                if self.on_packet is not None:
                    self.on_packet(packet, at)
                self._waiters.feed(packet)
        except websockets.ConnectionClosed as exc:
            reason = f"{exc.rcvd.code if exc.rcvd else 'no close frame'}"
        finally:
            self._waiters.fail_all(ConnectionError(f"{self.user_id}: connection lost ({reason})"))
            if self.on_close is not None:
                self.on_close(reason)

    async def emit(self, event: str, data: Any, ack_id: int | None = None) -> None:
        await self.ws.send(f"{EVENT}{'' if ack_id is None else ack_id}{json.dumps([event, data])}")

    def expect(self, matches: Callable[[Packet], bool]) -> asyncio.Future[Packet]:
        """The first packet from now on that ``matches`` (register before acting)."""
        return self._waiters.expect(matches)

    async def close(self) -> None:
        self.on_packet = None
        self.on_close = None
        await self.ws.close()
        await self._reader
