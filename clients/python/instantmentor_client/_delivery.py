"""Once-only, gap-free chat delivery on top of requests and pushes.

* ``message_received`` pushes are deduplicated by ``message_id`` and their seqs tracked per
  conversation (:class:`~instantmentor_client.reliability.SeqTracker`).
* After every connection, ``sync {since: watermarks}`` fetches what was missed while away.
* A gap in a conversation's seqs still open after ``gap_fill_delay`` is filled with ``sync``.
* With ``auto_ack_delivery``, ``message_delivered`` receipts are sent, coalesced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from instantmentor_client._dispatch import Dispatcher
from instantmentor_client._link import Link
from instantmentor_client._monitoring import ClientStats
from instantmentor_client._requests import Requests
from instantmentor_client.errors import InstantMentorError
from instantmentor_client.models import ChatMessage, Event
from instantmentor_client.reliability import MessageDedupe, SeqTracker

log = logging.getLogger("instantmentor_client")

SYNC_CHUNK = 1000  # PROTOCOL: `since` holds at most 1000 conversations


class Delivery:
    """The bookkeeping behind exactly-once, gap-free chat delivery: it sees every
    ``message_received`` push and every message a request returned, and sends the receipts
    and ``sync`` requests that follow from them."""

    def __init__(
        self,
        link: Link,
        requests: Requests,
        dispatcher: Dispatcher,
        stats: ClientStats,
        *,
        tracker: SeqTracker,
        dedupe: MessageDedupe,
        auto_ack: bool,
        ack_delay: float,
        gap_fill_delay: float,
    ) -> None:
        self.link = link
        self.requests = requests
        self.dispatcher = dispatcher
        self.stats = stats
        self.tracker = tracker
        self.dedupe = dedupe
        self.auto_ack = auto_ack
        self._ack_delay = ack_delay
        self._gap_fill_delay = gap_fill_delay
        self._ack_wakeup = asyncio.Event()
        self._acker: asyncio.Task[None] | None = None
        self._gap_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- what comes in ---------------------------------------------------------------------

    def on_push(self, data: dict[str, Any]) -> None:
        """A ``message_received`` push: dropped when seen before, else tracked and emitted."""
        message_id = data.get("message_id")
        if isinstance(message_id, str) and not self.dedupe.add(message_id):
            self.stats.duplicates_dropped += 1
            return
        conversation_id, seq = data.get("conversation_id"), data.get("seq")
        if isinstance(conversation_id, str) and isinstance(seq, int):
            me = self.link.session.user_id if self.link.session else None
            from_peer = data.get("sender_id") != me
            if self.tracker.observe(conversation_id, seq, from_peer=from_peer):
                self._schedule_gap_fill()
            if from_peer and self.auto_ack:
                self._ack_wakeup.set()
        self.dispatcher.emit(Event("message_received", data))

    def on_sent(self, message_id: str, conversation_id: str, seq: int) -> None:
        """One of our messages, stored: never shown as received, and its seq is taken."""
        self.dedupe.add(message_id)
        if self.tracker.observe(conversation_id, seq):
            self._schedule_gap_fill()

    def on_history(self, messages: Iterable[ChatMessage]) -> None:
        """Messages a history page returned count as received."""
        me = self.link.session.user_id if self.link.session else None
        seen = False
        for message in messages:
            seen = True
            self.dedupe.add(message.message_id)
            self.tracker.observe(
                message.conversation_id, message.seq, from_peer=message.sender_id != me
            )
        if self.auto_ack and seen:
            self._ack_wakeup.set()

    def on_connected(self) -> None:
        """A new connection: catch up on every conversation seen, send pending receipts."""
        if len(self.tracker):
            self.spawn(self._resync())
        if self.auto_ack:
            self._ack_wakeup.set()

    # -- receipts and gaps -----------------------------------------------------------------

    async def mark(
        self, event: str, conversation_id: str, up_to_seq: int, timeout: float | None = None
    ) -> None:
        """``message_delivered`` / ``message_read`` up to ``up_to_seq``."""
        data = {"conversation_id": conversation_id, "up_to_seq": up_to_seq}
        await self.requests.request(event, data, timeout=timeout)
        self.tracker.mark_acked(conversation_id, up_to_seq)

    def start(self) -> None:
        if self.auto_ack:
            self._acker = asyncio.create_task(self._ack_loop(), name="im-acks")

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wakeup.wait()
            await asyncio.sleep(self._ack_delay)  # coalesce a burst into one receipt
            self._ack_wakeup.clear()
            await self.flush_acks()

    async def flush_acks(self, timeout: float | None = None) -> None:
        for conversation_id, up_to_seq in self.tracker.ackable().items():
            try:
                await self.mark("message_delivered", conversation_id, up_to_seq, timeout)
            except InstantMentorError as exc:
                log.info("delivery receipt for %s failed: %s", conversation_id, exc)

    def _schedule_gap_fill(self) -> None:
        if self._gap_task is None or self._gap_task.done():
            self._gap_task = self.spawn(self._fill_gaps())

    async def _fill_gaps(self) -> None:
        await asyncio.sleep(self._gap_fill_delay)  # out-of-order pushes usually fill it first
        gaps = self.tracker.gaps()
        if gaps:
            self.stats.gap_syncs += 1
            try:
                await self.sync(gaps, None)
            except InstantMentorError as exc:
                log.warning("sync to fill gaps failed: %s", exc)

    async def _resync(self) -> None:
        try:
            await self.sync(self.tracker.watermarks(), None)
        except InstantMentorError as exc:
            log.warning("sync after connecting failed: %s", exc)

    async def sync(self, since: Mapping[str, int], timeout: float | None) -> None:
        """``sync`` every conversation of ``since``, in chunks the protocol allows."""
        items = list(since.items())
        for start in range(0, len(items), SYNC_CHUNK):
            chunk = dict(items[start : start + SYNC_CHUNK])
            await self.requests.request("sync", {"since": chunk}, timeout=timeout, retry=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` (a resync or gap fill) as a task that :meth:`tasks` lists."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every task of the delivery bookkeeping still running (to stop them)."""
        tasks = [t for t in (self._acker, self._gap_task) if t is not None]
        return [t for t in (*tasks, *self._background) if not t.done()]
