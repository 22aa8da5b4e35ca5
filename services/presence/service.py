"""Presence as the runtime runs it: its handlers, and its gateway watchdog."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from services.presence.handlers import GATEWAY_EXPIRED, GatewayExpired, PresenceHandlers
from services.presence.store import PresenceStore, PresenceTx
from shared.clock import now
from shared.errors import Unavailable
from shared.runtime.service import BackgroundJob, ServiceDefinition, ServiceRunner
from shared.settings import Settings

log = logging.getLogger(__name__)


def gateway_watchdog(
    store: PresenceStore, settings: Settings, clock: Callable[[], float]
) -> BackgroundJob:
    async def watch_gateways(runner: ServiceRunner) -> None:
        """Hand every gateway that stopped beating to a replica as ``gateway_expired``.

        Only silence this replica could have heard counts: a broker outage silences every
        gateway, so after one the watchdog waits ``IM_GATEWAY_TIMEOUT_S`` of connection before
        it judges (a live gateway beats again and re-announces its connections by then)."""
        while True:
            await asyncio.sleep(settings.gateway_heartbeat_s)
            if runner.broker.connected_for() < settings.gateway_timeout_s:
                continue
            try:
                cutoff = clock() - settings.gateway_timeout_s
                silent = await store.read(partial(PresenceTx.silent_gateways, since=cutoff))
                for gateway_id in silent:
                    expired = GatewayExpired(gateway_id=gateway_id)
                    await runner.command(GATEWAY_EXPIRED, expired.model_dump())
            except Unavailable:
                log.warning("broker unavailable; gateway watchdog waits")

    return watch_gateways


def build(settings: Settings, clock: Callable[[], float] = now) -> ServiceDefinition:
    store = PresenceStore(
        settings.db_url("presence"),
        settings.db_pool_size("presence"),
        settings.db_writes_on_loop,
    )
    handlers = PresenceHandlers(settings, store, clock)
    return ServiceDefinition(
        name="presence",
        handlers=handlers.table(),
        startup=store.start,
        shutdown=store.close,
        background=[gateway_watchdog(store, settings, clock)],
    )
