"""Calls as ``call_signal`` sees them: read once, then served from memory for a moment.

Signalling (WebRTC offer/answer/ICE) comes in bursts of dozens per call; reading the call for
each one made the database the signal path's ceiling. A call read here is trusted for
``fresh_for_s``; after that it is still served while a read refreshes it in the background
(a signal never waits for the database once its call is known: waiting for those refreshes
was most of the signal path's p99). This replica's own changes replace it at once, so a signal
may be relayed about ``fresh_for_s`` after another replica ended the call (harmless: the peer
ignores signals for a call it has left). Parties never change: who may signal whom is always
right.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from services.calls.domain import Call

log = logging.getLogger(__name__)

FRESH_FOR_S = 1.0
CAPACITY = 10_000


class LiveCalls:
    def __init__(
        self,
        load: Callable[[str], Awaitable[Call | None]],
        fresh_for_s: float = FRESH_FOR_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._fresh_for_s = fresh_for_s
        self._clock = clock
        self._known: dict[str, tuple[Call, float]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def get(self, call_id: str) -> Call | None:
        known = self._known.get(call_id)
        if known is None:
            call = await self._load(call_id)
            if call is not None:
                self.remember(call)
            return call
        if self._clock() - known[1] >= self._fresh_for_s and call_id not in self._refreshing:
            refresh = asyncio.create_task(self._refresh(call_id), name=f"refresh-{call_id}")
            self._refreshing[call_id] = refresh
            refresh.add_done_callback(lambda _: self._refreshing.pop(call_id, None))
        return known[0]

    async def _refresh(self, call_id: str) -> None:
        try:
            call = await self._load(call_id)
        except Exception:
            log.exception("could not refresh call %s", call_id)
            return
        if call is not None:
            self.remember(call)
        else:
            self._known.pop(call_id, None)

    async def refreshed(self) -> None:
        """Wait for the refreshes under way (tests, shutdown)."""
        if self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    def remember(self, call: Call) -> None:
        """A version of the call just read or written by this replica."""
        if len(self._known) >= CAPACITY:
            self._known.clear()
        self._known[call.call_id] = (call, self._clock())
