"""Calls as ``call_signal`` sees them: read once, then served from memory for a moment.

Signalling (WebRTC offer/answer/ICE) comes in bursts of dozens per call; reading the call for
each one made the database the signal path's ceiling. A call read here is trusted for
``fresh_for_s``, and this replica's own changes replace it at once, so a signal may be relayed
at most that long after another replica ended the call (harmless: the peer ignores signals
for a call it has left). Parties never change, so who may signal whom is always right.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from services.calls.domain import Call

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

    async def get(self, call_id: str) -> Call | None:
        known = self._known.get(call_id)
        if known is not None and self._clock() - known[1] < self._fresh_for_s:
            return known[0]
        call = await self._load(call_id)
        if call is not None:
            self.remember(call)
        return call

    def remember(self, call: Call) -> None:
        """A version of the call just read or written by this replica."""
        if len(self._known) >= CAPACITY:
            self._known.clear()
        self._known[call.call_id] = (call, self._clock())
