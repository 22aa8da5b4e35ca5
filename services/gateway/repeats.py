"""Pushes a service sends again, dropped when they went out here already.

A service runs a command again when it was redelivered: its first run may have crashed between
commit and acknowledge, or a broker failover lost the acknowledgement. The second run finds its
work stored and publishes the same pushes again, since it cannot know whether the first run's
went out. It marks them as repeats (``x-repeat``; ``"repeat"`` in a bundle entry). This gateway
keeps a fingerprint of every push frame it delivered lately, and drops a repeat it has
delivered already, so clients do not see a message, a call state or a status twice.

Only marked pushes are checked: two equal frames of two different commands (a mentor going
busy, available, busy again) both go out. The memory is bounded by time and by count; a repeat
older than that goes out again, and clients dedupe it by its id (PROTOCOL: ``message_id``).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RecentFrames:
    def __init__(
        self, window_s: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._clock = clock
        self._seen: dict[int, float] = {}  # fingerprint → when delivered, oldest first

    def note(self, text: str) -> None:
        """``text`` was delivered to this gateway's connections now."""
        at = self._clock()
        fingerprint = hash(text)
        seen = self._seen
        seen.pop(fingerprint, None)  # to the end: the order stays oldest first
        seen[fingerprint] = at
        oldest = next(iter(seen))
        while len(seen) > self._capacity or at - seen[oldest] > self._window_s:
            del seen[oldest]
            oldest = next(iter(seen))

    def delivered(self, text: str) -> bool:
        """Whether ``text`` was delivered here within the window."""
        at = self._seen.get(hash(text))
        return at is not None and self._clock() - at <= self._window_s

    def __len__(self) -> int:
        return len(self._seen)
