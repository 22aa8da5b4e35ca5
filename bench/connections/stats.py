"""From what the students recorded to one row per measure.

Latencies use ``bench.openloop.stats``: a client that never got there counts as infinitely
late, so p99 is ∞ once more than 1 % failed; ``last`` is the latest client that did.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.openloop.stats import NEVER, Distribution, distribution

SessionRecord = dict[str, Any]  # a client.Session as a dict (it crossed a pipe)


@dataclass
class Measure:
    name: str
    clients: int
    latency: Distribution  # ms, per client, from the measure's start
    last_ms: float  # until the last client that made it (fan-out: median over changes)
    failures: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    clients_retrying: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def retried(self) -> int:
        return sum(self.retries.values())


def _since(t0: float, moment: float | None) -> float:
    return NEVER if moment is None else moment - t0


def merged(counters: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return dict(total.most_common())


def session_measure(
    name: str, sessions: Sequence[SessionRecord], field_name: str, t0: float | None = None
) -> Measure:
    """Time to ``field_name`` ('connected' or 'snapshot') of each client, from ``t0``, or from
    each session's own start (the storm: its scheduled slot) when ``t0`` is None. A client
    that got ``connected`` and then failed counts as a failure only in the snapshot row."""
    samples = [_since(s["started"] if t0 is None else t0, s[field_name]) for s in sessions]
    dist = distribution(samples)
    missed = [s for s in sessions if s[field_name] is None]
    return Measure(
        name=name,
        clients=len(sessions),
        latency=dist,
        last_ms=dist.max_ms,
        failures=merged({s["failure"] or "unfinished": 1} for s in missed),
        retries=merged(s["retries"] for s in sessions),
        clients_retrying=sum(1 for s in sessions if s["retries"]),
        extra={"failure_examples": {s["failure"]: s.get("detail") for s in missed}},
    )


def generator_lag(sessions: Sequence[SessionRecord]) -> Distribution:
    """How late the load generator began each first handshake after its scheduled slot."""
    return distribution(
        s["first_attempt"] - s["started"] for s in sessions if s["first_attempt"] is not None
    )


def fanout_measure(
    name: str, sent_at: dict[str, float], arrivals: dict[str, list[float | None]]
) -> tuple[Measure, list[dict[str, Any]]]:
    """One row over every change (medians of p50, p99 and last) and one record per change."""
    dists = [
        distribution(_since(t0, at) for at in arrivals.get(tag, [])) for tag, t0 in sent_at.items()
    ]
    if not dists:
        raise ValueError("no status change was sent")
    changes = [
        {
            "tag": tag,
            "latency": dist,
            "first_ms": _first_ms(t0, arrivals.get(tag, [])),
            "last_ms": dist.max_ms,
        }
        for (tag, t0), dist in zip(sent_at.items(), dists, strict=True)
    ]
    median = Distribution(
        count=dists[0].count,
        missing=sum(d.missing for d in dists),
        p50_ms=statistics.median(d.p50_ms for d in dists),
        p90_ms=statistics.median(d.p90_ms for d in dists),
        p99_ms=statistics.median(d.p99_ms for d in dists),
        max_ms=statistics.median(d.max_ms for d in dists),
    )
    missing = {"update not received": median.missing} if median.missing else {}
    row = Measure(name, dists[0].count, median, median.max_ms, failures=missing)
    return row, changes


def _first_ms(t0: float, moments: Iterable[float | None]) -> float | None:
    """The earliest delivery (ms after ``t0``): what the path costs before the writes start."""
    arrived = [moment for moment in moments if moment is not None]
    return (min(arrived) - t0) * 1000 if arrived else None


def reconnect_measure(
    name: str, t0: float, records: Sequence[dict[str, Any] | None]
) -> tuple[Measure, Measure]:
    """Rows for ``connected`` and ``snapshot`` again, from ``t0`` (the signal), per client that
    was up then; its last session after ``t0`` counts, retries of all of them."""
    finals: list[SessionRecord] = []
    drops_seen: list[float] = []
    extra_sessions = 0
    for record in records:
        if record is None:
            finals.append(dict(NO_DROP, started=t0))
            continue
        sessions = record["sessions"]
        extra_sessions += len(sessions) - 1
        drops_seen.append(sessions[0]["started"] - t0)
        final = dict(sessions[-1])
        final["retries"] = merged(s["retries"] for s in sessions)
        if final["snapshot"] is None and final["failure"] is None:
            final["failure"] = "not reconnected by the deadline"
        finals.append(final)
    rows = (
        session_measure(f"{name} → connected", finals, "connected", t0),
        session_measure(f"{name} → snapshot", finals, "snapshot", t0),
    )
    for row in rows:
        row.extra["dropped_again_after_reconnecting"] = extra_sessions
        row.extra["drop_seen_ms"] = distribution(drops_seen)
    return rows


NO_DROP: SessionRecord = {
    "first_attempt": None,
    "connected": None,
    "snapshot": None,
    "failure": "never saw the drop",
    "retries": {},
}
