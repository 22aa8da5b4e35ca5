"""Chat as a service: its handlers, the fact it follows, and its group-commit writer."""

from __future__ import annotations

import logging

from services.chat.handlers import SYNC_PUSH, ChatHandlers
from services.chat.store import ChatStore
from services.chat.writer import GroupWriter
from shared.protocol.domain import CONNECTIONS_CHANGED
from shared.runtime.service import ServiceDefinition
from shared.settings import Settings

# Commands handled at once by one replica. Writers wait for their batch's commit, so this
# bounds the batch size too; it is kept at most the prefetch (what the broker hands over).
WORKERS = 64

log = logging.getLogger(__name__)


def build(settings: Settings) -> ServiceDefinition:
    store = ChatStore(
        settings.db_url("chat"),
        settings.max_undelivered_per_conversation,
        settings.db_pool_size("chat"),
    )
    writer = GroupWriter(store.apply)
    h = ChatHandlers(settings, store, writer)

    async def shutdown() -> None:
        log.info("chat wrote %d operations in %d batches", writer.operations, writer.batches)
        await store.close()

    return ServiceDefinition(
        name="chat",
        handlers={
            "send_message": h.send_message,
            "message_delivered": h.message_delivered,
            "message_read": h.message_read,
            "user_typing": h.user_typing,
            "user_stopped_typing": h.user_stopped_typing,
            "get_history": h.get_history,
            "list_conversations": h.list_conversations,
            "sync": h.sync,
            "edit_message": h.edit_message,
            "delete_message": h.delete_message,
            SYNC_PUSH: h.sync_push,
            CONNECTIONS_CHANGED: h.connections_changed,
        },
        facts=[CONNECTIONS_CHANGED],
        workers=min(WORKERS, settings.prefetch),
        startup=store.create,
        shutdown=shutdown,
        background=[writer.run],
    )
