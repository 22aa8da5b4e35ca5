"""Push dispatch: ``on()`` handlers and ``events()`` streams.

Every push (and the client's own ``connected`` / ``disconnected`` / ``closed`` events) is
queued and handed out by one dispatcher task, in arrival order: handlers first, then streams.
A slow handler delays later events, never replies to requests.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress

from instantmentor_client.errors import ClientClosed
from instantmentor_client.models import Event

log = logging.getLogger("instantmentor_client")

Handler = Callable[[Event], Awaitable[None] | None]


class EventStream:
    """An async iterator over pushes (all, or only the names given to ``events()``).

    Subscribed from the moment ``client.events()`` returns; unbounded; ends when the client
    closes or :meth:`close` is called.
    """

    def __init__(self, streams: set[EventStream], names: Iterable[str]) -> None:
        self._streams = streams  # the dispatcher's: left when the stream ends
        self._names = frozenset(names)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._ended:
            event = await self._queue.get()
            if event is None:
                self._end()
                break
            if not self._names or event.name in self._names:
                return event
        raise StopAsyncIteration

    async def next(self, timeout: float | None = None) -> Event:
        """The next event; ``TimeoutError`` after ``timeout`` s, ``StopAsyncIteration`` at end."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[Event], bool] | None = None,
        *,
        timeout: float | None = None,
    ) -> Event:
        """Consume events until one named ``name`` (and matching ``predicate``) arrives."""

        async def scan() -> Event:
            async for event in self:
                if event.name == name and (predicate is None or predicate(event)):
                    return event
            raise ClientClosed(f"the client closed before {name}")

        return await asyncio.wait_for(scan(), timeout)

    def close(self) -> None:
        """Stop receiving; a pending ``async for`` ends."""
        self._end()
        self._queue.put_nowait(None)

    def _put(self, event: Event | None) -> None:
        if not self._ended:
            self._queue.put_nowait(event)

    def _end(self) -> None:
        self._ended = True
        self._streams.discard(self)


class Dispatcher:
    """Hands every event to the ``on()`` handlers, then to the ``events()`` streams, in the
    order emitted, from one task (:meth:`run`), until :meth:`finish`."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._streams: set[EventStream] = set()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._finishing = False

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(Event)`` (sync or async) for every push named ``event`` (``"*"``:
        all). Returns a function that unregisters it. Exceptions in handlers are logged."""
        self._handlers.setdefault(event, []).append(handler)

        def off() -> None:
            self.off(event, handler)

        return off

    def off(self, event: str, handler: Handler) -> None:
        with suppress(KeyError, ValueError):
            self._handlers[event].remove(handler)

    def events(self, *names: str) -> EventStream:
        """A stream of pushes (only ``names`` if given), subscribed now."""
        stream = EventStream(self._streams, names)
        if self._finishing and (self._task is None or self._task.done()):
            stream._put(None)
        else:
            self._streams.add(stream)
        return stream

    def emit(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="im-dispatch")

    def finish(self) -> None:
        """No more events: the dispatcher ends once it handed out those emitted so far."""
        self._finishing = True
        self._queue.put_nowait(None)

    async def wait_finished(self, timeout: float) -> None:
        """Wait (bounded) until the events emitted before :meth:`finish` were handed out."""
        task = self._task
        if task is None:
            self._end_streams()
            return
        if task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                event = await self._queue.get()
                if event is None:
                    return
                for handler in [*self._handlers.get(event.name, ()), *self._handlers.get("*", ())]:
                    try:
                        result = handler(event)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception("handler for %s failed", event.name)
                for stream in list(self._streams):
                    stream._put(event)
        finally:
            self._end_streams()

    def _end_streams(self) -> None:
        for stream in list(self._streams):
            stream._put(None)
        self._streams.clear()
