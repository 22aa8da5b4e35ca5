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

MIN_RATE_PER_S = 20.0  # the floor of the estimate
START_SETUP_S = 1.0  # assumed before the first set-up completed
MIN_RETRY_MS = 100
MAX_RETRY_MS = 30_000
SMOOTHING = 0.1  # weight of the latest set-up time in the running average


class Ticket:
    """One admitted socket's set-up; :meth:`done` (idempotent) when it is set up or gone."""

    __slots__ = ("_gate", "_started")

    def __init__(self, gate: ConnectGate, started: float) -> None:
        self._gate: ConnectGate | None = gate
        self._started = started

    def done(self) -> None:
        if self._gate is not None:
            self._gate.finished(self._started)
            self._gate = None


class ConnectGate:
    """Little's law: with ``max_pending`` set-ups in flight, each taking ``setup_s`` on
    average, set-ups complete at ``max_pending / setup_s`` per second. That is the pace at
    which the slots of the refused are handed out."""

    def __init__(self, max_pending: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self.setup_s = START_SETUP_S  # running average of a set-up's duration
        self._clock = clock
        self._next_slot = 0.0  # when the last refused socket was told to come back

    def enter(self) -> Ticket | None:
        """A ticket when the socket may be set up now; None when it must come back later
        (then :meth:`retry_after_ms` says when)."""
        if self.pending >= self.max_pending:
            return None
        self.pending += 1
        return Ticket(self, self._clock())

    @property
    def rate_per_s(self) -> float:
        return max(MIN_RATE_PER_S, self.max_pending / max(self.setup_s, 1e-3))

    def retry_after_ms(self) -> int:
        """The next free slot at the current pace, after the ones handed out already."""
        now, rate = self._clock(), self.rate_per_s
        # a slot after everyone being set up, then one per socket already told to come back
        start = max(self._next_slot, now + self.pending / rate)
        self._next_slot = start + 1 / rate
        return max(MIN_RETRY_MS, min(MAX_RETRY_MS, round((self._next_slot - now) * 1000)))

    def finished(self, started: float) -> None:
        self.pending -= 1
        took = self._clock() - started
        self.setup_s += SMOOTHING * (took - self.setup_s)
