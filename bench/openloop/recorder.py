"""What happened to every message of one step, and its summary.

``MessageLog`` is for point-to-point workloads (one receiver per message); ``FanoutLog`` for
one sender and many receivers under "latest delivered" semantics (PROTOCOL §5 lets the
server coalesce a mentor's status changes, so a change superseded by a later one that
arrives counts as delivered — at the moment the later one arrived).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.openloop.stats import NEVER, Distribution, distribution, latencies

# Every error code but this one means the command was refused and nothing will be delivered;
# `unavailable` means "outcome unknown", so such a message may still arrive.
OUTCOME_UNKNOWN = "unavailable"


@dataclass(frozen=True)
class Delivery:
    """The summary of one step. Latencies start at the scheduled send time."""

    sent: int
    delivered: int
    delivered_per_s: float
    lost: int  # sent and not delivered by the end of the drain (refused or still in flight)
    lost_silently: int  # ... of which no error reply explains the loss
    duplicates: int
    errors: dict[str, int]
    retry_after: Distribution | None
    e2e: Distribution
    ack: Distribution
    send_lag: Distribution  # actual send start - scheduled: the load generator's own delay
    extra: dict[str, float] = field(default_factory=dict)


class SenderSide:
    """Send times, replies (ack or error) and errors of the messages of one step."""

    def __init__(self, count: int) -> None:
        self.scheduled: list[float] = [NEVER] * count  # set by the runner just before sending
        self.sent = [NEVER] * count
        self.replied = [NEVER] * count
        self.error_of: dict[int, str] = {}
        self.refused: set[int] = set()  # errors after which nothing will be delivered
        self.errors: Counter[str] = Counter()
        self.retry_after_s: list[float] = []
        self.answered: set[int] = set()  # replied to, or known never to be
        self.sent_count = 0

    def on_sent(self, seq: int, at: float) -> None:
        self.sent[seq] = at
        self.sent_count += 1

    def on_send_failed(self, seq: int, reason: str) -> None:
        code = f"send_failed:{reason}"
        self.errors[code] += 1
        self.error_of[seq] = code
        self.refused.add(seq)
        self.answered.add(seq)  # no reply will come: do not wait for one

    def on_reply(self, seq: int, at: float, code: str | None, retry_after_ms: float | None) -> None:
        if not 0 <= seq < len(self.replied) or seq in self.answered:
            return
        self.answered.add(seq)
        self.replied[seq] = at
        if code is not None:
            self.errors[code] += 1
            self.error_of[seq] = code
            if code != OUTCOME_UNKNOWN:
                self.refused.add(seq)
        if retry_after_ms is not None:
            self.retry_after_s.append(retry_after_ms / 1000)

    def on_connection_lost(self, who: str, reason: str) -> None:
        self.errors[f"closed:{who}:{reason}"] += 1

    def sent_seqs(self) -> list[int]:
        return [i for i, t in enumerate(self.sent) if t != NEVER]

    def _delivery(
        self,
        arrivals: list[float],
        scheduled: list[float],
        lost: list[int],
        duplicates: int,
        duration_s: float,
        matched_by_order: bool = False,
    ) -> Delivery:
        """The summary, given every delivery and the time each one was due."""
        sent = self.sent_seqs()
        sent_scheduled = [self.scheduled[i] for i in sent]
        delivered = sum(1 for t in arrivals if t != NEVER)
        last = max((t for t in arrivals if t != NEVER), default=self.scheduled[0])
        return Delivery(
            sent=len(sent),
            delivered=delivered,
            # over the step, or over the longer time the deliveries took to arrive
            delivered_per_s=delivered / max(duration_s, last - self.scheduled[0]),
            lost=len(lost),
            lost_silently=(
                # which message a push stands for is a guess: only the counts compare
                max(0, len(lost) - len(self.error_of))
                if matched_by_order
                else sum(1 for i in lost if i not in self.error_of)
            ),
            duplicates=duplicates,
            errors=dict(sorted(self.errors.items())),
            retry_after=distribution(self.retry_after_s) if self.retry_after_s else None,
            e2e=distribution(latencies(scheduled, arrivals)),
            ack=distribution(latencies(sent_scheduled, [self.replied[i] for i in sent])),
            send_lag=distribution(latencies(sent_scheduled, [self.sent[i] for i in sent])),
        )


class MessageLog(SenderSide):
    """One step of a point-to-point workload; index = the message's sequence number.

    ``matched_by_order``: deliveries carry no id and were matched to sends by their order.
    """

    def __init__(self, count: int, matched_by_order: bool = False) -> None:
        super().__init__(count)
        self.matched_by_order = matched_by_order
        self.delivered = [NEVER] * count
        self.delivered_count = 0
        self.duplicates = 0

    def on_delivered(self, seq: int, at: float) -> None:
        if not 0 <= seq < len(self.delivered) or self.delivered[seq] != NEVER:
            self.duplicates += 1  # (or more pushes than messages, in count-matched workloads)
            return
        self.delivered[seq] = at
        self.delivered_count += 1

    def settled(self) -> bool:
        """Every message sent, replied to, and delivered or refused."""
        if self.sent_count < len(self.sent) or len(self.answered) < self.sent_count:
            return False
        return self.delivered_count + len(self.refused) >= self.sent_count

    def summary(self, duration_s: float) -> Delivery:
        sent = self.sent_seqs()
        return self._delivery(
            arrivals=[self.delivered[i] for i in sent],
            scheduled=[self.scheduled[i] for i in sent],
            lost=[i for i in sent if self.delivered[i] == NEVER],
            duplicates=self.duplicates,
            duration_s=duration_s,
            matched_by_order=self.matched_by_order,
        )


class FanoutLog(SenderSide):
    """One step of a broadcast: change ``k`` of one sender, seen by each of ``receivers``."""

    def __init__(self, count: int, receivers: int) -> None:
        super().__init__(count)
        self.first_seen = [[NEVER] * count for _ in range(receivers)]
        self.latest = [-1] * receivers
        self.caught_up = 0  # receivers that have seen the last change
        self.pushes = 0
        self.duplicates = 0

    def on_push(self, receiver: int, change: int, at: float) -> None:
        if not 0 <= change < len(self.sent):
            return
        self.pushes += 1
        seen = self.first_seen[receiver]
        if seen[change] != NEVER:
            self.duplicates += 1
            return
        seen[change] = at
        if change > self.latest[receiver]:
            if change == len(self.sent) - 1:
                self.caught_up += 1
            self.latest[receiver] = change

    def settled(self) -> bool:
        if self.sent_count < len(self.sent) or len(self.answered) < self.sent_count:
            return False
        return self.caught_up == len(self.first_seen)

    def _delivered_at(self, receiver: int) -> list[float]:
        """When the receiver first saw change k *or a later one* (a suffix minimum)."""
        seen = self.first_seen[receiver]
        out = list(seen)
        for k in range(len(out) - 2, -1, -1):
            out[k] = min(out[k], out[k + 1])
        return out

    def summary(self, duration_s: float) -> Delivery:
        sent = self.sent_seqs()
        arrivals: list[float] = []
        scheduled: list[float] = []
        last_per_change = [0.0] * len(self.sent)
        superseded = 0
        for receiver in range(len(self.first_seen)):
            delivered_at = self._delivered_at(receiver)
            for k in sent:
                arrivals.append(delivered_at[k])
                scheduled.append(self.scheduled[k])
                latency = delivered_at[k] - self.scheduled[k]
                last_per_change[k] = max(last_per_change[k], latency)
                superseded += self.first_seen[receiver][k] == NEVER and delivered_at[k] != NEVER
        # a pair (change, receiver) that never arrived is named by its change's sequence number
        lost = [k for a, k in zip(arrivals, sent * len(self.first_seen), strict=True) if a == NEVER]
        delivery = self._delivery(arrivals, scheduled, lost, self.duplicates, duration_s)
        last = distribution([last_per_change[k] for k in sent])
        delivery.extra.update(
            receivers=len(self.first_seen),
            pushes=self.pushes,
            superseded=superseded,
            last_p50_ms=last.p50_ms,
            last_p99_ms=last.p99_ms,
            last_max_ms=last.max_ms,
        )
        return delivery
