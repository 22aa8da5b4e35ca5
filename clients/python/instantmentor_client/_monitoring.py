"""What the client reports about itself: counters (:class:`ClientStats`) and, before each
reconnection attempt, a :class:`ReconnectAttempt` for the ``on_reconnect_attempt`` hook."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReconnectAttempt:
    """Passed to ``on_reconnect_attempt`` before each attempt sleeps ``delay`` seconds.

    ``attempt`` counts from 1 since the connection was lost; ``delay`` is uniform in
    ``[0, ceiling]``; ``ceiling`` is ``min(backoff_cap, backoff_base * 2**(attempt-1))``;
    ``error`` is why the connection or the previous attempt failed (``None`` if unknown).
    """

    attempt: int
    delay: float
    ceiling: float
    error: BaseException | None


@dataclass
class ClientStats:
    """Counters for monitoring and tests."""

    connections: int = 0
    reconnect_attempts: int = 0
    duplicates_dropped: int = 0
    gap_syncs: int = 0
    dead_connections: int = 0  # connections dropped by the heartbeat deadline
