"""A raw WebSocket client of our gateway (PROTOCOL §1–2): JSON frames out, and a reader task
that timestamps every frame the moment it arrives and hands it to ``on_frame``."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from bench.openloop.socket_client import SocketClient

Frame = dict[str, Any]
SETUP_TIMEOUT_S = 15.0


class CommandFailed(RuntimeError):
    """A setup command was answered with an ``error`` frame."""

    def __init__(self, event: str, frame: Frame) -> None:
        data = frame.get("data") or {}
        super().__init__(f"{event}: {data.get('code')}: {data.get('message')}")
        self.code = str(data.get("code"))


class GatewayClient(SocketClient[Frame]):
    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        super().__init__(ws, user_id)
        self._refs = itertools.count()

    @classmethod
    async def connect(cls, ws_url: str, token: str, user_id: str, deflate: bool) -> GatewayClient:
        """Open the socket and return once the ``connected`` frame arrived."""
        ws = await websockets.connect(
            f"{ws_url}?token={token}",
            max_size=None,
            ping_interval=None,  # the server pings; the client only answers
            compression="deflate" if deflate else None,
        )
        first = json.loads(await ws.recv())
        if first.get("event") != "connected":
            await ws.close()
            raise RuntimeError(f"{user_id}: expected 'connected', got {first}")
        return cls(ws, user_id)

    async def _decode(self, raw: str | bytes) -> Frame | None:
        frame: Frame = json.loads(raw)
        return frame

    async def send(self, event: str, data: dict[str, Any], ref: str | None = None) -> None:
        frame: Frame = {"event": event, "data": data}
        if ref is not None:
            frame["ref"] = ref
        await self.ws.send(json.dumps(frame))

    async def request(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a command and wait for its ``ack`` data (setup only)."""
        ref = f"setup-{next(self._refs)}"
        reply = self._waiters.expect(
            lambda f: f.get("ref") == ref and f.get("event") in ("ack", "error")
        )
        await self.send(event, data, ref)
        frame = await asyncio.wait_for(reply, SETUP_TIMEOUT_S)
        if frame["event"] == "error":
            raise CommandFailed(event, frame)
        result: dict[str, Any] = frame.get("data") or {}
        return result


def reply_of(frame: Frame) -> tuple[str | None, str | None, float | None] | None:
    """``(ref, error code or None, retry_after_ms)`` of an ``ack``/``error`` frame, else None."""
    event = frame.get("event")
    if event == "ack":
        return frame.get("ref"), None, None
    if event == "error":
        data = frame.get("data") or {}
        retry = data.get("retry_after_ms")
        return frame.get("ref"), str(data.get("code")), float(retry) if retry is not None else None
    return None
