"""A raw WebSocket client of our gateway (PROTOCOL §1–2): JSON frames out, and a reader task
that timestamps every frame the moment it arrives and hands it to ``on_frame``."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from bench.openloop.schedule import now
from bench.openloop.waiters import Waiters

Frame = dict[str, Any]
FrameHandler = Callable[[Frame, float], None]
SETUP_TIMEOUT_S = 15.0


class CommandFailed(RuntimeError):
    """A setup command was answered with an ``error`` frame."""

    def __init__(self, event: str, frame: Frame) -> None:
        data = frame.get("data") or {}
        super().__init__(f"{event}: {data.get('code')}: {data.get('message')}")
        self.code = str(data.get("code"))


class GatewayClient:
    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.on_frame: FrameHandler | None = None  # measured traffic
        self.on_close: Callable[[str], None] | None = None
        self._waiters: Waiters[Frame] = Waiters()
        self._refs = itertools.count()
        self._reader = asyncio.create_task(self._read())

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

    async def _read(self) -> None:
        reason = "closed by client"
        try:
            async for raw in self.ws:
                at = now()
                frame: Frame = json.loads(raw)
                if self.on_frame is not None:
                    self.on_frame(frame, at)
                self._waiters.feed(frame)
        except websockets.ConnectionClosed as exc:
            reason = f"{exc.rcvd.code if exc.rcvd else 'no close frame'}"
        finally:
            self._waiters.fail_all(ConnectionError(f"{self.user_id}: connection lost ({reason})"))
            if self.on_close is not None:
                self.on_close(reason)

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

    def expect(self, matches: Callable[[Frame], bool]) -> asyncio.Future[Frame]:
        """The first frame from now on that ``matches`` (register before acting; bound the
        wait with ``asyncio.wait_for``)."""
        return self._waiters.expect(matches)

    async def close(self) -> None:
        self.on_frame = None
        self.on_close = None
        await self.ws.close()
        await self._reader


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
