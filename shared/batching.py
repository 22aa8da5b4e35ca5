"""Doing many small things as one: a connect storm's facts and bindings, the commands of a
gateway's lane, the effects of a service's commands.

A :class:`Batcher` hands the items added within ``window_s`` — and while earlier batches are
still being done — to ``flush`` together. Batches start in order, so what was added later
never overtakes what was added earlier. By default one batch is done at a time; with
``in_flight=n`` up to ``n`` overlap, each started once the one before it has gone as far as
its first pause (for a publish: written to the channel, waiting for its confirm).
:meth:`Batcher.add` returns once the batch holding its item is done, and raises what
``flush`` raised; :meth:`Batcher.submit` returns that outcome as a future instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(
        self,
        flush: Callable[[list[T]], Coroutine[Any, Any, None]],
        window_s: float,
        in_flight: int = 1,
    ) -> None:
        self._flush = flush
        self._window_s = window_s
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []  # one per add(), of the next batch
        self._starting = asyncio.Lock()  # batches start one after the other, in order
        self._in_flight = in_flight
        self._slots = asyncio.Semaphore(in_flight)
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
        if self._in_flight == 1:  # each batch done before the next may start
            async with self._starting:
                items, waiters = await self._take()
                await self._done(waiters, self._flush(items))
            return
        async with self._starting:
            await self._slots.acquire()
            try:
                items, waiters = await self._take()
            except BaseException:
                self._slots.release()
                raise
            # Scheduled before the next batch can resume (the loop runs callbacks in order),
            # so it reaches its first pause first.
            flushing = asyncio.ensure_future(self._flush(items))
        try:
            await self._done(waiters, flushing)
        finally:
            self._slots.release()

    async def _take(self) -> tuple[list[T], list[asyncio.Future[None]]]:
        """The next batch: what was added within the window, with its waiters."""
        if self._window_s:
            await asyncio.sleep(self._window_s)
        items, self._items = self._items, []
        waiters, self._waiters = self._waiters, []
        return items, waiters

    @staticmethod
    async def _done(waiters: list[asyncio.Future[None]], flushing: Awaitable[None]) -> None:
        """Await the batch's flush and tell each of its items' waiters how it went."""
        outcome: Exception | None = None
        try:
            await flushing
        except asyncio.CancelledError:  # shutting down: nobody hears "done"
            if isinstance(flushing, asyncio.Future):
                flushing.cancel()
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
