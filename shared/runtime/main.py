"""The ``python -m services.<name>`` entry point shared by every service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import uvloop

from shared.amqp.broker import Broker
from shared.logs import configure_logging
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
HEALTH_EVERY_S = 5.0

Builder = Callable[[Settings], ServiceDefinition]


def run_service(name: str, build: Builder) -> None:
    settings = get_settings()
    configure_logging(name, settings.log_level, settings.log_json)
    uvloop.run(serve(name, build, settings))


async def serve(name: str, build: Builder, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(settings, f"{name}-{os.getpid()}")
    await broker.connect(retry_for_s=120)
    health = asyncio.create_task(report_health(broker, settings.health_file))
    try:
        await ServiceRunner(build(settings), settings, broker).run(stop)
    finally:
        health.cancel()
        await broker.close()
        log.info("%s stopped", name)


async def report_health(broker: Broker, path: Path | None, every_s: float = HEALTH_EVERY_S) -> None:
    """Touch ``path`` while the broker is connected (a container health check reads its age)."""
    if path is None:
        return
    while True:
        if broker.connected:
            path.touch()
        await asyncio.sleep(every_s)
