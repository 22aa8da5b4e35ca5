"""How the runtime settles each message (no broker): ack after the effects are published,
an error reply for a refusal, a retry for a crash, dead-lettering on the last attempt (even
when the sender cannot be told), undecodable and expired messages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.topology import Topology
from shared.errors import Conflict, Unavailable
from shared.runtime.outbox import Request
from shared.runtime.service import ServiceDefinition, ServiceRunner
from shared.settings import Settings

LIMIT = 3  # attempts before a crashing command is dead-lettered


@dataclass
class Published:
    exchange: str
    routing_key: str
    body: dict[str, Any]
    kwargs: dict[str, Any]


@dataclass
class FakeBroker:
    topology: Topology = field(default_factory=lambda: Topology("t"))
    published: list[Published] = field(default_factory=list)
    failing: bool = False  # the broker is away: every publish raises Unavailable

    async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
        if self.failing:
            raise Unavailable("broker unreachable")
        self.published.append(Published(exchange, routing_key, json.loads(body), kw))
        return True

    def replies(self) -> list[dict[str, Any]]:
        return [p.body for p in self.published if p.kwargs.get("message_type") == h.REPLY]


@dataclass
class FakeDelivery:
    """What :class:`ServiceRunner` reads of a delivery, and how it settled it."""

    body: bytes
    headers: dict[str, Any] | None = None
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


def runner(handler: Callable[[Request], Awaitable[None]], broker: FakeBroker) -> ServiceRunner:
    definition = ServiceDefinition(name="svc", handlers={"work": handler})
    settings = Settings(delivery_limit=LIMIT)
    return ServiceRunner(definition, settings, cast(Broker, cast(Any, broker)))


async def process(service: ServiceRunner, delivery: FakeDelivery) -> FakeDelivery:
    await service.process(cast(Delivery, cast(Any, delivery)))
    return delivery


async def answers(req: Request) -> None:
    req.out.emit("svc.done", {"n": 1})
    req.out.reply = {"done": True}


async def refuses(req: Request) -> None:
    raise Conflict("already done")


async def crashes(req: Request) -> None:
    raise RuntimeError("a bug")


async def test_effects_then_reply_then_ack() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(command()))
    assert [p.routing_key for p in broker.published] == ["svc.done", "gw.q"]
    assert broker.replies() == [{"ok": True, "data": {"done": True}}]
    assert delivery.settled == ["ack"]


async def test_a_refusal_is_answered_and_acked() -> None:
    broker = FakeBroker()
    delivery = await process(runner(refuses, broker), FakeDelivery(command()))
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "conflict")
    assert delivery.settled == ["ack"]


async def test_a_crash_is_retried_without_a_reply() -> None:
    broker = FakeBroker()
    delivery = await process(runner(crashes, broker), FakeDelivery(command()))
    assert broker.published == []
    assert delivery.settled == ["nack(requeue=True)"]


@pytest.mark.parametrize("attempts_before", [LIMIT - 1, LIMIT + 4])
async def test_the_last_attempt_tells_the_sender_and_dead_letters(attempts_before: int) -> None:
    broker = FakeBroker()
    last = FakeDelivery(command(), headers={"x-delivery-count": attempts_before})
    delivery = await process(runner(crashes, broker), last)
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "internal")
    assert delivery.settled == ["reject(requeue=False)"]


async def test_the_last_attempt_dead_letters_even_when_the_sender_cannot_be_told() -> None:
    broker = FakeBroker(failing=True)
    last = FakeDelivery(command(), headers={"x-delivery-count": LIMIT - 1})
    delivery = await process(runner(crashes, broker), last)
    assert delivery.settled == ["reject(requeue=False)"], "never left unsettled"


async def test_effects_that_cannot_be_published_are_retried() -> None:
    broker = FakeBroker(failing=True)
    delivery = await process(runner(answers, broker), FakeDelivery(command()))
    assert delivery.settled == ["nack(requeue=True)"]


async def test_an_undecodable_message_is_dead_lettered_unanswered() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(b"{not json"))
    assert broker.published == []
    assert delivery.settled == ["reject(requeue=False)"]


async def test_a_command_past_its_deadline_is_dropped_unexecuted() -> None:
    broker = FakeBroker()
    ran: list[Request] = []

    async def records(req: Request) -> None:
        ran.append(req)

    late = FakeDelivery(command(), headers={h.DEADLINE: h.epoch_ms() - 1})
    service = runner(records, broker)
    delivery = await process(service, late)
    assert ran == [] and broker.published == []
    assert delivery.settled == ["ack"]
    assert service.expired.total == 1


async def test_an_event_without_a_handler_is_answered_internal_not_retried() -> None:
    broker = FakeBroker()
    delivery = await process(runner(answers, broker), FakeDelivery(command("unknown")))
    [reply] = broker.replies()
    assert (reply["ok"], reply["code"]) == (False, "internal")
    assert delivery.settled == ["ack"]
