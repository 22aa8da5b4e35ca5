"""Presence's gateway watchdog judges only silence it could have heard: after its own broker
connection came back, it waits a whole gateway timeout before it expires anyone (no broker,
no database: the store and the runner are stand-ins)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.presence.handlers import GATEWAY_EXPIRED
from services.presence.service import gateway_watchdog
from services.presence.store import PresenceStore
from shared.runtime.service import ServiceRunner
from shared.settings import Settings
from tests.support.stack import poll

TIMEOUT_S = 15.0


class Silent:
    """A store in which gateway ``g1`` stopped beating long ago."""

    async def read(self, work: Any) -> list[str]:
        return ["g1"]


class Broker:
    """How long presence's broker connection has lasted, as the test sets it."""

    def __init__(self, connected_for: float) -> None:
        self.seconds = connected_for
        self.asked = 0  # how many ticks the watchdog made

    def connected_for(self) -> float:
        self.asked += 1
        return self.seconds


class Runner:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.commands: list[tuple[str, dict[str, Any]]] = []

    async def command(self, event: str, data: dict[str, Any]) -> None:
        self.commands.append((event, data))


async def test_after_a_reconnect_no_gateway_expires_until_a_whole_timeout_passed() -> None:
    settings = Settings(gateway_heartbeat_s=0.01, gateway_timeout_s=TIMEOUT_S)
    broker = Broker(connected_for=1.0)  # back for a second: every gateway seems silent
    runner = Runner(broker)
    watch = gateway_watchdog(cast(PresenceStore, Silent()), settings, clock=lambda: 1e9)
    task = asyncio.create_task(watch(cast(ServiceRunner, runner)))
    try:
        await poll(lambda: broker.asked >= 5, 2, "five ticks of the watchdog")
        assert runner.commands == []
        broker.seconds = TIMEOUT_S  # connected for a whole timeout: g1's silence is real
        await poll(lambda: bool(runner.commands), 2, "g1 handed over as expired")
        assert runner.commands[0] == (GATEWAY_EXPIRED, {"gateway_id": "g1"})
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
