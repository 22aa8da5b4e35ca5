"""The pure logic behind reconnection and exactly-once chat delivery (no I/O, no asyncio).

* :class:`Backoff` — exponential backoff with full jitter, capped.
* :class:`MessageDedupe` — a bounded LRU of ``message_id`` s already handed to the app.
* :class:`SeqTracker` — per conversation, the highest ``seq`` up to which nothing is missing
  (the *watermark* sent in ``sync`` after a reconnect), the gaps above it, and what still
  needs a ``message_delivered`` receipt.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field


class Backoff:
    """Delays between reconnection attempts: ``uniform(0, min(cap, base * 2 ** (attempt-1)))``.

    "Full jitter": many clients cut off at once (a gateway restart) spread their retries over
    the whole window instead of stampeding together. Attempts are numbered from 1; the
    ceiling doubles per attempt until it reaches ``cap``.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        if base <= 0:
            raise ValueError("backoff base must be > 0")
        if cap < base:
            raise ValueError("backoff cap must be >= base")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` (≥ 1) may wait."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        exponent = min(attempt - 1, 64)  # 2**64 * base is past any sane cap; avoids overflow
        return float(min(self.cap, self.base * 2.0**exponent))

    def delay(self, attempt: int) -> float:
        """A random delay in ``[0, ceiling(attempt)]``."""
        return self._rng.uniform(0.0, self.ceiling(attempt))


class MessageDedupe:
    """Remembers the last ``capacity`` message ids; :meth:`add` tells whether one is new.

    Duplicates happen by design: the catch-up on connect, a ``sync`` from the watermark and
    live pushes overlap after a reconnect. Bounded so a long-running client does not grow
    without limit; a duplicate older than ``capacity`` newer messages would slip through.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> bool:
        """Record ``message_id``; ``True`` if it was not seen (within the window) before."""
        if message_id in self._seen:
            self._seen.move_to_end(message_id)
            return False
        self._seen[message_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class _Conversation:
    watermark: int  # every seq in (baseline, watermark] was seen
    highest: int
    above: set[int] = field(default_factory=set)  # seen seqs > watermark + 1
    peer_highest: int = 0  # highest seq of a message from the other participant
    acked: int = 0  # up_to_seq of the last successful message_delivered


class SeqTracker:
    """What this client has of each conversation, by ``seq``.

    The first seq seen in a conversation is its *baseline*: older messages are history, not
    gaps (a new device does not need seq 1…56 to be live-complete). From there the
    *watermark* advances only over consecutive seqs; a seq further ahead opens a *gap* until
    the missing ones arrive. ``sync`` from the watermark therefore returns every missing
    message (plus some already seen, which :class:`MessageDedupe` drops).
    """

    def __init__(self) -> None:
        self._conversations: dict[str, _Conversation] = {}

    def seed(self, conversation_id: str, seq: int) -> None:
        """Start from a known watermark (e.g. one an app persisted); no-op if already tracked."""
        if conversation_id not in self._conversations:
            self._conversations[conversation_id] = _Conversation(
                watermark=seq, highest=seq, acked=seq
            )

    def observe(self, conversation_id: str, seq: int, *, from_peer: bool = False) -> bool:
        """Record that the message ``seq`` is here. ``True`` if this left a gap below it."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = self._conversations[conversation_id] = _Conversation(watermark=seq, highest=seq)
        elif seq == conv.watermark + 1:
            conv.watermark = seq
            while conv.watermark + 1 in conv.above:
                conv.watermark += 1
                conv.above.discard(conv.watermark)
        elif seq > conv.watermark + 1:
            conv.above.add(seq)
        conv.highest = max(conv.highest, seq)
        if from_peer:
            conv.peer_highest = max(conv.peer_highest, seq)
        return bool(conv.above)

    def watermark(self, conversation_id: str) -> int | None:
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.watermark

    def highest(self, conversation_id: str) -> int | None:
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.highest

    def watermarks(self) -> dict[str, int]:
        """``{conversation_id: watermark}`` — exactly the ``since`` of a gap-closing ``sync``."""
        return {cid: conv.watermark for cid, conv in self._conversations.items()}

    def gaps(self) -> dict[str, int]:
        """The conversations with a gap, and their watermark (the ``since`` that fills it)."""
        return {cid: conv.watermark for cid, conv in self._conversations.items() if conv.above}

    def missing(self, conversation_id: str) -> list[int]:
        """The seqs known to be missing (between the watermark and the highest seen)."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return []
        return [s for s in range(conv.watermark + 1, conv.highest) if s not in conv.above]

    def ackable(self) -> dict[str, int]:
        """``{conversation_id: up_to_seq}`` for a ``message_delivered`` that moves something:
        a message of the peer arrived since the last receipt, and everything up to the
        watermark is here. Receipts never cover a gap."""
        return {
            cid: conv.watermark
            for cid, conv in self._conversations.items()
            if conv.watermark > conv.acked and conv.peer_highest > conv.acked
        }

    def mark_acked(self, conversation_id: str, up_to_seq: int) -> None:
        conv = self._conversations.get(conversation_id)
        if conv is not None:
            conv.acked = max(conv.acked, up_to_seq)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._conversations

    def __len__(self) -> int:
        return len(self._conversations)
