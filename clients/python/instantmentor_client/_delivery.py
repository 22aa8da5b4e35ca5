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
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from instantmentor_client._dispatch import PushDispatch
from instantmentor_client._monitoring import ClientStats
from instantmentor_client._requests import RequestReply
from instantmentor_client.errors import InstantMentorError
from instantmentor_client.models import Event, Session
from instantmentor_client.reliability import MessageDedupe, SeqTracker

log = logging.getLogger("instantmentor_client")

SYNC_CHUNK = 1000  # PROTOCOL: `since` holds at most 1000 conversations


class ChatDelivery(RequestReply, PushDispatch):
    """Mixin of :class:`~instantmentor_client.client.InstantMentorClient`: the bookkeeping
    behind exactly-once chat delivery. State is set up by the client's ``__init__``."""

    auto_ack_delivery: bool
    stats: ClientStats
    _session: Session | None
    _dedupe: MessageDedupe
    _tracker: SeqTracker
    _ack_delay: float
    _ack_wakeup: asyncio.Event
    _gap_fill_delay: float
    _gap_task: asyncio.Task[None] | None
    _background: set[asyncio.Task[None]]

    if TYPE_CHECKING:  # a typed request method, defined in ApiMethods

        async def mark_delivered(
            self, conversation_id: str, up_to_seq: int, *, timeout: float | None = None
        ) -> None: ...

    # -- pushes --------------------------------------------------------------------------

    def _on_message(self, data: dict[str, Any]) -> None:
        message_id = data.get("message_id")
        if isinstance(message_id, str) and not self._dedupe.add(message_id):
            self.stats.duplicates_dropped += 1
            return
        conversation_id, seq = data.get("conversation_id"), data.get("seq")
        if isinstance(conversation_id, str) and isinstance(seq, int):
            me = self._session.user_id if self._session else None
            from_peer = data.get("sender_id") != me
            if self._tracker.observe(conversation_id, seq, from_peer=from_peer):
                self._schedule_gap_fill()
            if from_peer and self.auto_ack_delivery:
                self._ack_wakeup.set()
        self._emit(Event("message_received", data))

    # -- receipts and gaps ---------------------------------------------------------------

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wakeup.wait()
            await asyncio.sleep(self._ack_delay)  # coalesce a burst into one receipt
            self._ack_wakeup.clear()
            await self._flush_acks()

    async def _flush_acks(self, timeout: float | None = None) -> None:
        for conversation_id, up_to_seq in self._tracker.ackable().items():
            try:
                await self.mark_delivered(conversation_id, up_to_seq, timeout=timeout)
            except InstantMentorError as exc:
                log.info("delivery receipt for %s failed: %s", conversation_id, exc)

    def _schedule_gap_fill(self) -> None:
        if self._gap_task is None or self._gap_task.done():
            self._gap_task = self._spawn(self._fill_gaps())

    async def _fill_gaps(self) -> None:
        await asyncio.sleep(self._gap_fill_delay)  # out-of-order pushes usually fill it first
        gaps = self._tracker.gaps()
        if gaps:
            self.stats.gap_syncs += 1
            try:
                await self._sync_all(gaps, None)
            except InstantMentorError as exc:
                log.warning("sync to fill gaps failed: %s", exc)

    async def _resync(self) -> None:
        try:
            await self._sync_all(self._tracker.watermarks(), None)
        except InstantMentorError as exc:
            log.warning("sync after connecting failed: %s", exc)

    async def _sync_all(self, since: Mapping[str, int], timeout: float | None) -> None:
        items = list(since.items())
        for start in range(0, len(items), SYNC_CHUNK):
            chunk = dict(items[start : start + SYNC_CHUNK])
            await self.request("sync", {"since": chunk}, timeout=timeout, retry=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` (a resync or gap fill) as a task that ``close()`` cancels."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
