"""Presence as a service: its handlers, the facts it follows, and its gateway watchdog."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from services.presence.handlers import (
    FLUSH_STATUS,
    GATEWAY_EXPIRED,
    GRACE_EXPIRED,
    PresenceHandlers,
)
from services.presence.store import PresenceStore, PresenceTx
from shared.clock import now
from shared.errors import Unavailable
from shared.protocol.domain import (
    CALL_ACCEPTED,
    CALL_ENDED,
    CONNECTIONS_CHANGED,
    GATEWAY_HEARTBEAT,
    SNAPSHOT_REQUESTED,
)
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings

log = logging.getLogger(__name__)


def silent_since(cutoff: float, tx: PresenceTx) -> list[str]:
    return tx.silent_gateways(cutoff)


def build(settings: Settings) -> ServiceDefinition:
    store = PresenceStore(settings.db_url("presence"), settings.db_pool_size("presence"))
    h = PresenceHandlers(settings, store)

    async def watch_gateways(runner: ServiceRunner) -> None:
        """Hand every gateway that stopped beating to a replica as ``gateway_expired``."""
        while True:
            await asyncio.sleep(settings.gateway_heartbeat_s)
            try:
                silent = await store.read(partial(silent_since, now() - settings.gateway_timeout_s))
                for gateway_id in silent:
                    await runner.command(GATEWAY_EXPIRED, {"gateway_id": gateway_id})
            except Unavailable:
                log.warning("broker unavailable; gateway watchdog waits")

    return ServiceDefinition(
        name="presence",
        handlers={
            "mentor_available": h.mentor_available,
            "mentor_busy": h.mentor_busy,
            "get_mentors": h.get_mentors,
            CONNECTIONS_CHANGED: h.connections_changed,
            GATEWAY_HEARTBEAT: h.gateway_heartbeat,
            GATEWAY_EXPIRED: h.gateway_expired,
            GRACE_EXPIRED: h.grace_expired,
            FLUSH_STATUS: h.flush_status,
            CALL_ACCEPTED: h.call_accepted,
            CALL_ENDED: h.call_ended,
            SNAPSHOT_REQUESTED: h.snapshot_requested,
        },
        facts=[
            CONNECTIONS_CHANGED,
            GATEWAY_HEARTBEAT,
            CALL_ACCEPTED,
            CALL_ENDED,
            SNAPSHOT_REQUESTED,
        ],
        startup=store.create,
        shutdown=store.close,
        background=[watch_gateways],
    )
