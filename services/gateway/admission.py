"""Admission control: a gateway stops feeding a service that has fallen behind.

Commands in flight are kept per lane (a service, and whether the event is transient), oldest
first. While a lane's oldest unanswered command is older than its limit, new commands for it
are refused at once with ``unavailable`` and ``retry_after_ms`` (they were never sent, so
resending is safe) instead of queueing behind a backlog and timing out after seconds.
Transient lanes have the lower limit, so typing and signals are shed first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.gateway import metrics
from shared.errors import Overloaded
from shared.logs import Tally

Lane = tuple[str, bool]  # (service, transient)


@dataclass(frozen=True, slots=True)
class Limits:
    durable_s: float
    transient_s: float

    def of(self, lane: Lane) -> float:
        return self.transient_s if lane[1] else self.durable_s


class Admission:
    def __init__(self, limits: Limits, tally: Tally) -> None:
        self.limits = limits
        self._in_flight: dict[Lane, dict[str, float]] = {}  # insertion order = oldest first
        self._tally = tally

    def admit(self, lane: Lane, now: float | None = None) -> None:
        """Raise :class:`Overloaded` while ``lane``'s oldest command waits too long."""
        age = self.oldest_age(lane, now)
        limit = self.limits.of(lane)
        if age > limit:
            service, transient = lane
            metrics.SHED.labels(service, "transient" if transient else "durable").inc()
            self._tally.add()
            raise Overloaded(
                f"the {service} service is behind; try again shortly",
                retry_after_ms=round(limit * 1000),
            )

    def oldest_age(self, lane: Lane, now: float | None = None) -> float:
        in_flight = self._in_flight.get(lane)
        if not in_flight:
            return 0.0
        oldest = next(iter(in_flight.values()))
        return (now if now is not None else time.monotonic()) - oldest

    def started(self, lane: Lane, correlation_id: str, at: float) -> None:
        self._in_flight.setdefault(lane, {})[correlation_id] = at

    def finished(self, lane: Lane, correlation_id: str) -> None:
        in_flight = self._in_flight.get(lane)
        if in_flight is not None:
            in_flight.pop(correlation_id, None)
