"""Doing many small things as one: what a connect storm needs from the gateway.

A :class:`Batcher` hands the items added within ``window_s`` — and while the previous batch
is still being done — to ``flush`` together. Batches are flushed one at a time, in order, so
what was added later never overtakes what was added earlier. :meth:`Batcher.add` returns
once the batch holding its item is done, and raises what ``flush`` raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], window_s: float) -> None:
        self._flush = flush
        self._window_s = window_s
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._flushing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self) -> int:
        """Items gathered for the next batch."""
        return len(self._items)

    async def add(self, item: T) -> None:
        self._items.append(item)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            task = loop.create_task(self._run(self._done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # shielded: one caller giving up (its socket closed) must not cancel the others' batch
        await asyncio.shield(self._done)

    async def _run(self, done: asyncio.Future[None]) -> None:
        async with self._flushing:  # the previous batch is done first: order is kept
            if self._window_s:
                await asyncio.sleep(self._window_s)
            items, self._items, self._done = self._items, [], None
            try:
                await self._flush(items)
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as exc:
                done.set_exception(exc)
                done.exception()  # retrieved: its callers may all have left
            else:
                done.set_result(None)
