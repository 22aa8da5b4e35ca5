"""Connection facts, batched: what a gateway tells the services about its connections.

A connect storm would otherwise cost every service a unit of work, a catch-up query and a
confirmed publish per connection. Here the connections opened and closed within a few
milliseconds (and while the previous batch is being confirmed) go out as one
:class:`ConnectionsChanged` fact, in order, so a close never overtakes its open. Each caller
waits until the broker confirmed its batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.batching import Batcher
from shared.protocol.domain import ConnectionFact, ConnectionsChanged

MAX_BATCH = 500  # facts per message (~100 KB)

Publish = Callable[[ConnectionsChanged], Awaitable[None]]


class Announcer:
    def __init__(self, publish: Publish, window_s: float) -> None:
        self._publish = publish
        self._batcher: Batcher[tuple[bool, ConnectionFact]] = Batcher(self._send, window_s)

    async def opened(self, fact: ConnectionFact) -> None:
        """Announce an opened connection; returns once the broker has it (or raises
        :class:`shared.errors.Unavailable`)."""
        await self._batcher.add((True, fact))

    async def closed(self, fact: ConnectionFact) -> None:
        await self._batcher.add((False, fact))

    def pending(self) -> int:
        return self._batcher.pending()

    async def _send(self, changes: list[tuple[bool, ConnectionFact]]) -> None:
        opened = [fact for is_open, fact in changes if is_open]
        closed = [fact for is_open, fact in changes if not is_open]
        # opens before closes: a connection opened and closed within one batch ends closed
        for i in range(0, len(opened), MAX_BATCH):
            await self._publish(ConnectionsChanged(opened=opened[i : i + MAX_BATCH]))
        for i in range(0, len(closed), MAX_BATCH):
            await self._publish(ConnectionsChanged(closed=closed[i : i + MAX_BATCH]))
