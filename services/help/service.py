"""The help service as the runtime runs it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.help.handlers import HelpHandlers
from services.help.store import HelpStore
from shared.clock import now
from shared.errors import Unavailable
from shared.protocol.domain import SNAPSHOT_REQUESTED, SnapshotRequested
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings

log = logging.getLogger(__name__)

NAME = "help"


async def request_mentor_snapshot(runner: ServiceRunner) -> None:
    """Ask presence to re-emit every mentor's status, so the mentor view is complete even on
    a first start or a lost database. A background job: it runs once the service queue is
    bound to the facts (answers sent earlier would be lost)."""
    delay = 0.5
    while True:
        try:
            await runner.emit(SNAPSHOT_REQUESTED, SnapshotRequested(requested_by=NAME).model_dump())
            log.info("asked presence for a mentor snapshot")
            return
        except Unavailable:
            log.warning("broker unavailable; mentor snapshot request retried in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def build(settings: Settings, clock: Callable[[], float] = now) -> ServiceDefinition:
    store = HelpStore(settings.db_url(NAME), settings.db_pool_size(NAME))
    handlers = HelpHandlers(
        store,
        expiry_s=settings.help_expiry_s,
        clock=clock,
        max_open=settings.max_open_help_requests,
        catchup_limit=settings.catchup_limit,
        repush_after_s=settings.help_repush_after_s,
    )
    return ServiceDefinition(
        name=NAME,
        handlers=handlers.table(),
        startup=store.start,
        shutdown=store.close,
        background=[request_mentor_snapshot],
    )
