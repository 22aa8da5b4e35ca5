"""Wires the help service: its handlers, the facts it follows, startup and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.help.handlers import EXPIRY_TIMER, HelpHandlers
from services.help.reactions import HelpReactions
from services.help.store import HelpStore
from shared.clock import now
from shared.errors import Unavailable
from shared.protocol.domain import (
    CONNECTIONS_CHANGED,
    MENTOR_STATUS_CHANGED,
    SNAPSHOT_REQUESTED,
)
from shared.runtime.service import Handler, ServiceDefinition, ServiceRunner
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
            await runner.emit(SNAPSHOT_REQUESTED, {"requested_by": NAME})
            log.info("asked presence for a mentor snapshot")
            return
        except Unavailable:
            log.warning("broker unavailable; mentor snapshot request retried in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def build(settings: Settings, clock: Callable[[], float] = now) -> ServiceDefinition:
    handlers = HelpHandlers(
        expiry_s=settings.help_expiry_s,
        clock=clock,
        max_open=settings.max_open_help_requests,
        catchup_limit=settings.catchup_limit,
        repush_after_s=settings.help_repush_after_s,
    )
    reactions = HelpReactions(handlers)
    table: dict[str, Handler] = {
        "student_request_help": handlers.student_request_help,
        "accept_help_request": handlers.accept_help_request,
        "decline_help_request": handlers.decline_help_request,
        "cancel_help_request": handlers.cancel_help_request,
        "list_help_requests": handlers.list_help_requests,
        EXPIRY_TIMER: reactions.help_expired,
        MENTOR_STATUS_CHANGED: reactions.mentor_status_changed,
        CONNECTIONS_CHANGED: reactions.connections_changed,
    }

    async def startup() -> None:
        handlers.attach(await HelpStore.open(settings.db_url(NAME), settings.db_pool_size(NAME)))

    async def shutdown() -> None:
        await handlers.store.dispose()

    return ServiceDefinition(
        name=NAME,
        handlers=table,
        facts=[MENTOR_STATUS_CHANGED, CONNECTIONS_CHANGED],
        startup=startup,
        shutdown=shutdown,
        background=[request_mentor_snapshot],
    )
