"""Latency distributions where "never arrived" is a value, not a missing sample.

A message that was lost counts as an infinitely late one: with 2 % lost, p99 is infinite.
Dropping lost messages from the percentiles would make an overloaded system look fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

NEVER = math.inf


@dataclass(frozen=True)
class Distribution:
    """Milliseconds; ``max_ms`` is the largest *finite* sample, ``missing`` the infinite ones."""

    count: int
    missing: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def complete(self) -> bool:
        return self.missing == 0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``NEVER`` sorts last); NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def distribution(samples_s: Iterable[float]) -> Distribution:
    """Summarise latencies in seconds (``NEVER`` for a message that never arrived)."""
    ordered = sorted(samples_s)
    finite = [s for s in ordered if s != NEVER]
    return Distribution(
        count=len(ordered),
        missing=len(ordered) - len(finite),
        p50_ms=percentile(ordered, 0.50) * 1000,
        p90_ms=percentile(ordered, 0.90) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=finite[-1] * 1000 if finite else math.nan,
    )


def latencies(scheduled: list[float], arrived: list[float]) -> list[float]:
    """``arrived - scheduled`` per message, ``NEVER`` where nothing arrived."""
    return [NEVER if a == NEVER else a - s for s, a in zip(scheduled, arrived, strict=True)]
