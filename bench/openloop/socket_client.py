"""What every benchmark client (our gateway over /ws or Socket.IO, the peer) shares: a
WebSocket whose reader task timestamps every message the moment it arrives, decodes it, and
hands it to ``on_message`` (measured traffic) and to the setup waiters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from bench.openloop.schedule import now
from bench.openloop.waiters import Waiters

Message = TypeVar("Message")


class SocketClient(Generic[Message]):
    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.on_message: Callable[[Message, float], None] | None = None  # measured traffic
        self.on_close: Callable[[str], None] | None = None
        self._waiters: Waiters[Message] = Waiters()
        self._reader = asyncio.create_task(self._read())

    async def _decode(self, raw: str | bytes) -> Message | None:
        """The message in ``raw``, or None for transport chatter (answered here if need be)."""
        raise NotImplementedError

    async def _read(self) -> None:
        reason = "closed by client"
        try:
            async for raw in self.ws:
                at = now()
                message = await self._decode(raw)
                if message is None:
                    continue
                if self.on_message is not None:
                    self.on_message(message, at)
                self._waiters.feed(message)
        except websockets.ConnectionClosed as exc:
            reason = f"{exc.rcvd.code if exc.rcvd else 'no close frame'}"
        finally:
            self._waiters.fail_all(ConnectionError(f"{self.user_id}: connection lost ({reason})"))
            if self.on_close is not None:
                self.on_close(reason)

    def expect(self, matches: Callable[[Message], bool]) -> asyncio.Future[Message]:
        """The first message from now on that ``matches`` (register before acting; bound the
        wait with ``asyncio.wait_for``)."""
        return self._waiters.expect(matches)

    def unlisten(self) -> None:
        """Stop reporting messages and the connection's loss (before closing on purpose)."""
        self.on_message = None
        self.on_close = None

    async def close(self) -> None:
        self.unlisten()
        await self.ws.close()
        await self._reader


async def close_all(clients: Iterable[SocketClient[Message] | None]) -> None:
    await asyncio.gather(*(c.close() for c in clients if c is not None))
