"""What the test clients (raw WebSocket, Socket.IO) share: what they received, in order, and
waiting on it with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class Receiving(Generic[Item]):
    """``received`` grows as items arrive (see :meth:`_receive`) until :meth:`_end`."""

    item_name = "item"  # what the failure messages call one (frame, report)

    def __init__(self) -> None:
        self.received: list[Item] = []
        self._new_item = asyncio.Condition()
        self._ended = False

    async def _receive(self, item: Item) -> None:
        async with self._new_item:
            self.received.append(item)
            self._new_item.notify_all()

    async def _end(self) -> None:
        """Nothing more will arrive: waits fail at once instead of at their deadline."""
        async with self._new_item:
            self._ended = True
            self._new_item.notify_all()

    def _why_ended(self) -> str:
        return "the client ended"

    def _recent(self) -> str:
        """The last items, for a wait that timed out."""
        return f"last items: {self.received[-20:]}"

    def mentors_seen(self) -> dict[str, dict[str, Any]]:
        """Mentor statuses as the client knows them (see ``merge_mentor_views``)."""
        raise NotImplementedError

    async def wait_for(
        self, predicate: Callable[[Item], bool], timeout: float = 10.0, what: str | None = None
    ) -> Item:
        """The first item (received so far or later) matching ``predicate``."""
        what = what or self.item_name
        seen = 0

        async def scan() -> Item:
            nonlocal seen
            async with self._new_item:
                while True:
                    for item in self.received[seen:]:
                        seen += 1
                        if predicate(item):
                            return item
                    if self._ended:
                        raise AssertionError(f"{self._why_ended()} before {what}")
                    await self._new_item.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s; {self._recent()}") from None

    async def until_mentor(
        self, mentor_id: str, timeout: float = 10.0, **fields: object
    ) -> dict[str, Any]:
        """Wait until the merged view of ``mentor_id`` (:meth:`mentors_seen`) has ``fields``."""

        def shows() -> bool:
            view = self.mentors_seen().get(mentor_id, {})
            return all(view.get(k) == v for k, v in fields.items())

        await self.wait_for(lambda _: shows(), timeout, f"{mentor_id} with {fields}")
        return self.mentors_seen()[mentor_id]
