"""Chat as a service: its handlers, the fact it follows, and its group-commit writer."""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.chat.handlers import ChatHandlers
from services.chat.store import ChatStore
from services.chat.writer import GroupWriter
from shared.clock import now
from shared.runtime.service import ServiceDefinition
from shared.settings import Settings

# Commands handled at once by one replica. Writers wait for their batch's commit, so this
# bounds the batch size too; it is kept at most the prefetch (what the broker hands over).
WORKERS = 64

log = logging.getLogger(__name__)


def build(settings: Settings, clock: Callable[[], float] = now) -> ServiceDefinition:
    store = ChatStore(
        settings.db_url("chat"),
        settings.max_undelivered_per_conversation,
        settings.db_pool_size("chat"),
        clock,
        settings.db_writes_on_loop,
    )
    writer = GroupWriter(store.apply)
    h = ChatHandlers(settings, store, writer)

    async def shutdown() -> None:
        log.info("chat wrote %d operations in %d batches", writer.operations, writer.batches)
        await store.close()

    return ServiceDefinition(
        name="chat",
        handlers=h.table(),
        workers=min(WORKERS, settings.prefetch),
        startup=store.start,
        shutdown=shutdown,
        background=[writer.run],
    )
