"""The session's connection as the other parts see it: the socket in use (if any), its
generation, the ``connected`` data, and one state for the client's whole life.

Everything that waits for the connection to change (a request waiting for a reconnection)
waits here; every part that changes it signals here.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from enum import Enum

from instantmentor_client._transport import Socket
from instantmentor_client.errors import ClientClosed, InstantMentorError, NotConnected
from instantmentor_client.models import Session


class ConnectionState(Enum):
    IDLE = "idle"  # connect() not called (or its first attempt failed)
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # lost; backing off or trying again
    CLOSING = "closing"  # close() is flushing receipts and stopping the parts
    CLOSED = "closed"  # for good: closed, token refused, gave up, or reconnect off


class Link:
    def __init__(self) -> None:
        self.state = ConnectionState.IDLE
        self.socket: Socket | None = None
        self.generation = 0  # counts connections: a request knows which one it was sent on
        self.session: Session | None = None  # the current (or last) connection's data
        self.fatal: InstantMentorError | None = None  # why it ended, once CLOSED
        self.received = asyncio.Event()  # any frame since the heartbeat last cleared it
        self._changed = asyncio.Event()

    @property
    def up(self) -> bool:
        """A socket is in use and the client is not closed."""
        return self.socket is not None and self.state is not ConnectionState.CLOSED

    @property
    def ending(self) -> bool:
        """close() was called, or the client ended for good."""
        return self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED)

    def connected(self, socket: Socket, session: Session) -> None:
        self.generation += 1
        self.socket = socket
        self.session = session
        if not self.ending:
            self.state = ConnectionState.CONNECTED
        self.signal()

    def lost(self) -> None:
        self.socket = None
        if not self.ending:
            self.state = ConnectionState.RECONNECTING
        self.signal()

    def closing(self) -> None:
        self.state = ConnectionState.CLOSING
        self.signal()

    def closed(self, error: InstantMentorError | None = None) -> None:
        self.state = ConnectionState.CLOSED
        self.fatal = self.fatal or error or ClientClosed("the client is closed")
        self.signal()

    def signal(self) -> None:
        """Wake everything waiting for a change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def closed_error(self, event: str | None) -> InstantMentorError:
        """The error of the end, for a request of ``event``."""
        fatal = self.fatal or ClientClosed("the client is closed")
        return type(fatal)(fatal.message, code=fatal.code, event=event)

    async def wait_connected(
        self, deadline: float, event: str | None, stale: int | None = None
    ) -> tuple[Socket, int]:
        """The socket in use (not of generation ``stale``) and its generation, waiting for
        one until ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        while True:
            if self.state is ConnectionState.CLOSED:
                raise self.closed_error(event)
            if self.socket is not None and self.generation != stale:
                return self.socket, self.generation
            if self.state is ConnectionState.IDLE:
                raise NotConnected("not connected: call connect() first", event=event)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotConnected("no connection to the server within the timeout", event=event)
            changed = self._changed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
