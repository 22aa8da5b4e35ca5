"""Doing many small things as one: what a connect storm needs from the gateway.

A :class:`Batcher` hands the items added within ``window_s`` — and while the previous batch
is still being done — to ``flush`` together. Batches are flushed one at a time, in order, so
what was added later never overtakes what was added earlier. :meth:`Batcher.add` returns
once the batch holding its item is done, and raises what ``flush`` raised;
:meth:`Batcher.submit` returns that outcome as a future instead of waiting for it.
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
        self._waiters: list[asyncio.Future[None]] = []  # one per add(), of the next batch
        self._flushing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self) -> int:
        """Items gathered for the next batch."""
        return len(self._items)

    async def add(self, item: T) -> None:
        await self.submit(item)

    def submit(self, item: T) -> asyncio.Future[None]:
        """Add ``item`` without waiting: the future of its batch being done. Cancelling the
        future gives up the wait only (a caller whose socket closed); the item still goes."""
        loop = asyncio.get_running_loop()
        if not self._items:
            task = loop.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._items.append(item)
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        return waiter

    async def _run(self) -> None:
        async with self._flushing:  # the previous batch is done first: order is kept
            if self._window_s:
                await asyncio.sleep(self._window_s)
            items, self._items = self._items, []
            waiters, self._waiters = self._waiters, []
            outcome: Exception | None = None
            try:
                await self._flush(items)
            except asyncio.CancelledError:  # shutting down: nobody hears "done"
                for waiter in waiters:
                    waiter.cancel()
                raise
            except Exception as exc:
                outcome = exc
            for waiter in waiters:
                if waiter.done():  # its caller gave up
                    continue
                if outcome is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(outcome)
