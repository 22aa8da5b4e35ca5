"""The real :meth:`ServiceRunner.process` driven without a broker: a fake incoming message
(what the runner reads of an aiormq delivery, and how it settled it) and a fake broker that
records what was published, or fails like a broker that is away."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.topology import Topology
from shared.errors import Unavailable
from shared.protocol.base import ServerPush
from shared.runtime.outbox import Request
from shared.runtime.routes import routes, timer
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings


class Note(ServerPush):
    """A push of the runtime's tests (no event of the protocol: it is not in its table,
    which is collected when ``shared.protocol.registry`` is imported, before this)."""

    EVENT = "note"

    id: str | None = None
    seq: int | None = None


@dataclass
class Published:
    exchange: str
    routing_key: str
    body: Any  # the JSON published: an object, or a bundle's list of entries
    kwargs: dict[str, Any]


@dataclass
class FakeBroker:
    topology: Topology = field(default_factory=lambda: Topology("t"))
    published: list[Published] = field(default_factory=list)
    failing: bool = False  # the broker is away: every publish raises Unavailable
    blips: int = 0  # this many publishes fail, and then the broker is back

    async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
        if self.failing or self.blips:
            self.blips = max(0, self.blips - 1)
            raise Unavailable("broker unreachable")
        self.published.append(Published(exchange, routing_key, json.loads(body), kw))
        return True

    async def until_connected(self, timeout_s: float) -> bool:
        return not self.failing

    def replies(self) -> list[dict[str, Any]]:
        return [p.body for p in self.published if p.kwargs.get("message_type") == h.REPLY]


@dataclass
class FakeDelivery:
    """What :class:`ServiceRunner` reads of a delivery, and how it settled it."""

    body: bytes
    headers: dict[str, Any] | None = None
    type: str | None = None  # h.BATCH for a gateway's batch of commands
    reply_to: str | None = "gw.q"
    correlation_id: str | None = "corr-1"
    message_id: str | None = "cmd-1"
    redelivered: bool = False
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append(f"nack(requeue={requeue})")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(f"reject(requeue={requeue})")


def command(event: str = "work", data: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"event": event, "data": data or {}}).encode()


class AnyData(BaseModel):
    """The data of ``work``: whatever it is."""

    model_config = ConfigDict(extra="allow")


DELIVERY_LIMIT = 3  # attempts before a crashing command is dead-lettered


def runner(
    handler: Callable[[Request], Awaitable[None]],
    broker: FakeBroker,
    delivery_limit: int = DELIVERY_LIMIT,
    workers: int = 1,
) -> ServiceRunner:
    """A runner of one service ``svc`` whose only event ``work`` goes to ``handler``."""
    work = timer("work", AnyData, handler)
    definition = ServiceDefinition(name="svc", handlers=routes(work), workers=workers)
    settings = Settings(delivery_limit=delivery_limit)
    return ServiceRunner(definition, settings, cast(Broker, cast(Any, broker)))


def batch(*ids: str) -> bytes:
    """A gateway's batch of ``work`` commands with these ids (see ``BatchedCommand``)."""
    return json.dumps([{"event": "work", "data": {}, "id": i} for i in ids]).encode()


async def process(
    service: ServiceRunner, delivery: FakeDelivery, transient: bool = False
) -> FakeDelivery:
    await service.process(cast(Delivery, cast(Any, delivery)), transient)
    return delivery
