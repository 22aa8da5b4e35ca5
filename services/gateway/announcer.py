"""Connection facts, batched: what a gateway tells the services about its connections.

A connect storm would otherwise cost every service a unit of work, a catch-up query and a
confirmed publish per connection. Here the connections opened and closed within
``window_s`` (and while the previous batch is being confirmed) go out as one
:class:`ConnectionsChanged` fact. Batches are published one at a time, in order, so a close
never overtakes its open. Each caller waits until the broker confirmed its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.protocol.domain import ConnectionFact, ConnectionsChanged

MAX_BATCH = 500  # facts per message (~100 KB)

Publish = Callable[[ConnectionsChanged], Awaitable[None]]


class Announcer:
    def __init__(self, publish: Publish, window_s: float) -> None:
        self._publish = publish
        self._window_s = window_s
        self._batch = ConnectionsChanged()
        self._confirmed: asyncio.Future[None] | None = None
        self._sending = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def opened(self, fact: ConnectionFact) -> None:
        """Announce an opened connection; returns once the broker has it (or raises
        :class:`shared.errors.Unavailable`)."""
        self._batch.opened.append(fact)
        await self._wait_for_batch()

    async def closed(self, fact: ConnectionFact) -> None:
        self._batch.closed.append(fact)
        await self._wait_for_batch()

    def pending(self) -> int:
        return len(self._batch.opened) + len(self._batch.closed)

    async def _wait_for_batch(self) -> None:
        if self._confirmed is None:
            self._confirmed = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._send(self._confirmed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # shield: one caller giving up (its connection closed) must not cancel the batch
        await asyncio.shield(self._confirmed)

    async def _send(self, confirmed: asyncio.Future[None]) -> None:
        async with self._sending:  # the previous batch is confirmed first: order is kept
            if self._window_s:
                await asyncio.sleep(self._window_s)
            batch, self._batch, self._confirmed = self._batch, ConnectionsChanged(), None
            try:
                for part in _split(batch):
                    await self._publish(part)
            except asyncio.CancelledError:
                confirmed.cancel()
                raise
            except Exception as exc:
                confirmed.set_exception(exc)
                confirmed.exception()  # retrieved: its callers may all have left
            else:
                confirmed.set_result(None)


def _split(batch: ConnectionsChanged) -> list[ConnectionsChanged]:
    """At most MAX_BATCH facts per message; opens before closes, as gathered."""
    parts = []
    for i in range(0, max(len(batch.opened), 1), MAX_BATCH):
        parts.append(ConnectionsChanged(opened=batch.opened[i : i + MAX_BATCH]))
    for i in range(0, len(batch.closed), MAX_BATCH):
        parts.append(ConnectionsChanged(closed=batch.closed[i : i + MAX_BATCH]))
    return [p for p in parts if p.opened or p.closed]
