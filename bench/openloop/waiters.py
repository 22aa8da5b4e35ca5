"""Futures resolved by the first incoming item that matches: for setup steps (connect, accept
a call, warm up), never for measured traffic, which goes through plain callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Waiters(Generic[Item]):
    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[Item], bool], asyncio.Future[Item]]] = []

    def feed(self, item: Item) -> None:
        if not self._pending:
            return
        still: list[tuple[Callable[[Item], bool], asyncio.Future[Item]]] = []
        for matches, future in self._pending:
            if future.done():
                continue
            if matches(item):
                future.set_result(item)
            else:
                still.append((matches, future))
        self._pending = still

    def expect(self, matches: Callable[[Item], bool]) -> asyncio.Future[Item]:
        """The first item from now on for which ``matches`` holds (registered at once, so
        register before sending what provokes it)."""
        future: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        self._pending.append((matches, future))
        return future

    def fail_all(self, error: BaseException) -> None:
        for _, future in self._pending:
            if not future.done():
                future.set_exception(error)
        self._pending = []
