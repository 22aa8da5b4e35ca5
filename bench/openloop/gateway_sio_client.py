"""Our gateway over Socket.IO (PROTOCOL §8), seen by the workloads as a :class:`GatewayClient`:
events and acknowledgements are turned back into the ``/ws`` frames they stand for, so the
same workload code measures both bindings side by side.

The framing is the peer's (:mod:`bench.openloop.sio_client`, Engine.IO v4 / Socket.IO v5 over
a raw WebSocket): the load generator pays the same per message for either.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.openloop.gateway_client import Frame, GatewayClient
from bench.openloop.sio_client import EVENT, PING, PONG, Packet, open_socketio, parse

CONNECT_TIMEOUT_S = 15.0


def as_frame(packet: Packet, ref: str | None) -> Frame:
    """The /ws frame of a Socket.IO event, or of the acknowledgement of the request ``ref``."""
    if packet.ack_id is None:
        return {"event": packet.name, "data": packet.args[0] if packet.args else {}}
    reply: dict[str, Any] = packet.args[0] if packet.args else {}
    if reply.get("ok"):
        return {"event": "ack", "ref": ref, "data": reply.get("data") or {}}
    return {"event": "error", "ref": ref, "data": reply.get("error") or {}}


def _is_connected(raw: str) -> bool:
    return (packet := parse(raw)) is not None and packet.name == "connected"


class SocketIOGatewayClient(GatewayClient):
    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self._ack_ids = itertools.count(1)
        self._refs_by_ack: dict[int, str | None] = {}
        super().__init__(ws, user_id)

    @classmethod
    async def connect(
        cls, ws_url: str, token: str, user_id: str, deflate: bool
    ) -> SocketIOGatewayClient:
        """``ws_url`` is the gateway's ``/ws`` URL; return once ``connected`` arrived."""
        url = ws_url.removesuffix("/ws") + "/socket.io/"
        ws = await open_socketio(url, {"token": token}, user_id, deflate, _is_connected)
        return cls(ws, user_id)

    async def _decode(self, raw: str | bytes) -> Frame | None:
        if raw == PING:
            await self.ws.send(PONG)
            return None
        packet = parse(str(raw))
        if packet is None:
            return None
        ref = None if packet.ack_id is None else self._refs_by_ack.pop(packet.ack_id, None)
        return as_frame(packet, ref)

    async def send(self, event: str, data: dict[str, Any], ref: str | None = None) -> None:
        """Emit with an acknowledgement wanted (the only way to hear of an error)."""
        ack_id = next(self._ack_ids)
        self._refs_by_ack[ack_id] = ref
        await self.ws.send(f"{EVENT}{ack_id}{json.dumps([event, data])}")
