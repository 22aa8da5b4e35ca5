"""The open-loop send schedule: times fixed up front, senders that never wait for replies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

now = time.perf_counter  # every timestamp of the benchmark comes from this one clock

Sender = Callable[[int], Awaitable[None]]
"""Sends message ``seq`` of the step; must not wait for its reply."""


def send_times(t0: float, rate: float, count: int) -> list[float]:
    """Message ``i`` is due at ``t0 + i / rate``; a pair's share is every P-th of them."""
    return [t0 + i / rate for i in range(count)]


async def _sleep_until(deadline: float) -> None:
    delay = deadline - now()
    # When behind schedule, still yield once: the readers measuring arrivals must keep running.
    await asyncio.sleep(max(0.0, delay))


async def run_open_loop(
    senders: Sequence[Sender],
    scheduled: Sequence[float],
    on_sent: Callable[[int, float], None],
) -> None:
    """Message ``i`` goes out through ``senders[i % len(senders)]`` at ``scheduled[i]``.

    Each sender sends its own messages in order; a sender that is held up (a full socket
    buffer) sends late, and the latency of those messages still starts at their scheduled
    time. ``on_sent`` gets the moment each send actually began, to report sender lag.
    """

    async def pace(first: int) -> None:
        for seq in range(first, len(scheduled), len(senders)):
            await _sleep_until(scheduled[seq])
            on_sent(seq, now())
            await senders[first](seq)

    await asyncio.gather(*(pace(p) for p in range(len(senders))))


async def wait_for(done: Callable[[], bool], deadline: float, poll_s: float = 0.05) -> bool:
    """Poll ``done`` until it holds or ``deadline`` (``now()`` clock) passes."""
    while not done():
        if now() >= deadline:
            return False
        await asyncio.sleep(poll_s)
    return True
