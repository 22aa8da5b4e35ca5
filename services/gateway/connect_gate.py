"""Admission of new sockets during a connect storm.

A gateway restart or a rolling deploy brings every client back at once. Setting each one up
(token, binding, connection fact, snapshot, catch-up) takes the gateway and the services a
little work; thousands at once would make every one of them slow, and time some out. So at
most ``max_pending`` sockets are set up at a time here. The ones beyond are closed at once
with 1013 and a ``retry_after_ms`` hint: each is given its own slot in the future, at the
rate set-ups are completing now, so the refused come back spread out, not as a second wave.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_RATE_PER_S = 50.0  # assumed before anything was measured, and the floor of the estimate
MIN_RETRY_MS = 100
MAX_RETRY_MS = 30_000
WINDOW_S = 1.0


class Ticket:
    """One admitted socket's set-up; :meth:`done` (idempotent) when it is set up or gone."""

    __slots__ = ("_gate",)

    def __init__(self, gate: ConnectGate) -> None:
        self._gate: ConnectGate | None = gate

    def done(self) -> None:
        if self._gate is not None:
            self._gate.finished()
            self._gate = None


class ConnectGate:
    def __init__(self, max_pending: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self._clock = clock
        self._rate = MIN_RATE_PER_S  # set-ups completed per second, smoothed
        self._window_start = clock()
        self._done_in_window = 0
        self._next_slot = 0.0  # when the last refused socket was told to come back

    def enter(self) -> Ticket | None:
        """A ticket when the socket may be set up now; None when it must come back later
        (then :meth:`retry_after_ms` says when)."""
        self._measure()
        if self.pending >= self.max_pending:
            return None
        self.pending += 1
        return Ticket(self)

    def retry_after_ms(self) -> int:
        """The next free slot, at the measured set-up rate, after the ones handed out."""
        now = self._clock()
        # a slot for everyone being set up, then one per socket already told to come back
        start = max(self._next_slot, now + self.pending / self._rate)
        self._next_slot = start + 1 / self._rate
        return max(MIN_RETRY_MS, min(MAX_RETRY_MS, round((self._next_slot - now) * 1000)))

    def finished(self) -> None:
        self.pending -= 1
        self._done_in_window += 1

    def _measure(self) -> None:
        elapsed = self._clock() - self._window_start
        if elapsed < WINDOW_S:
            return
        if self._done_in_window or self.pending:  # idle windows say nothing about the rate
            measured = self._done_in_window / elapsed
            self._rate = max(MIN_RATE_PER_S, (self._rate + measured) / 2)
        self._window_start += elapsed
        self._done_in_window = 0
