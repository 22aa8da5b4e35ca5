"""The calls service as the runtime runs it."""

from __future__ import annotations

from collections.abc import Callable

from services.calls.handlers import CallHandlers
from services.calls.store import CallStore
from shared.clock import now
from shared.runtime.service import ServiceDefinition
from shared.settings import Settings


def build(settings: Settings, clock: Callable[[], float] = now) -> ServiceDefinition:
    store = CallStore(settings.db_url("calls"), settings.db_pool_size("calls"))
    handlers = CallHandlers(store, ring_timeout_s=settings.call_ring_timeout_s, clock=clock)
    return ServiceDefinition(
        name="calls",
        handlers=handlers.table(),
        # One command at a time per replica keeps a user's own commands in order
        # (accept then end); replicas scale it out, the store settles their races.
        workers=1,
        startup=store.start,
        shutdown=store.close,
    )
