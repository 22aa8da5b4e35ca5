"""Status broadcasts paced per mentor (PROTOCOL v1.1 §5): within ``IM_STATUS_COALESCE_MS`` only
the latest change is broadcast. A mentor flapping 150 times in 2 s costs every connected user
about ten updates, not 150.

Pure bookkeeping, no I/O: the handler broadcasts at once (``NOW``), or arms one timer that
broadcasts the mentor's state as stored when it fires (``ARM``), or does nothing because such
a timer was armed less than half a window ago, so it fires at least half a window after this
change is committed and reads it (``FOLDED``). The timer may fire on another replica, so a
replica never trusts its own timer for longer than that: later changes arm another (at most
two timers per window; a broadcast of the same state twice is harmless).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Pace(Enum):
    NOW = "now"
    ARM = "arm"
    FOLDED = "folded"


class BroadcastPacer:
    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._last: dict[str, float] = {}  # mentor → when their status was last broadcast
        self._armed: dict[str, float] = {}  # mentor → when a flush timer was armed

    def decide(self, mentor_id: str) -> Pace:
        at = self._clock()
        armed_at = self._armed.get(mentor_id)
        if armed_at is not None and at - armed_at < self.window_s / 2:
            return Pace.FOLDED
        last = self._last.get(mentor_id)
        if last is None or at - last >= self.window_s:
            self._last[mentor_id] = at
            self._armed.pop(mentor_id, None)
            return Pace.NOW
        self._armed[mentor_id] = at
        return Pace.ARM

    def flushed(self, mentor_id: str) -> None:
        """The armed timer broadcast the mentor's latest state."""
        self._last[mentor_id] = self._clock()
        self._armed.pop(mentor_id, None)
