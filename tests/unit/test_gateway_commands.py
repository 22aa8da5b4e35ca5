"""The gateway's commands out (no broker): one command goes alone and at once; those that
arrive while the broker confirms go together in the next message, in order; a refusal reaches
exactly the commands of the refused message."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from services.gateway.commands import MAX_PER_MESSAGE, CommandSender, Outgoing
from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.topology import Topology
from shared.errors import Overloaded, Unavailable
from tests.support.stack import poll

LANE = ("chat", False)
TRANSIENT = ("calls", True)


@dataclass
class GatedBroker:
    """Publishes are held until released, like a confirm the broker has not sent yet."""

    topology: Topology = field(default_factory=lambda: Topology("t"))
    published: list[tuple[str, str, Any, dict[str, Any]]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: set[int] = field(default_factory=set)  # which publishes (by number) fail

    async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
        number = len(self.published)
        self.published.append((exchange, routing_key, json.loads(body), kw))
        await self.gate.wait()
        if number in self.refuse:
            raise Overloaded("queue full")
        return True


def outgoing(i: int) -> Outgoing:
    return Outgoing({"event": "send_message", "data": {"n": i}}, f"c{i}", h.epoch_ms() + 9_000)


def sender(broker: GatedBroker) -> CommandSender:
    return CommandSender(cast(Broker, cast(Any, broker)), "gw.q")


async def test_one_command_goes_alone_as_a_plain_command() -> None:
    broker = GatedBroker()
    broker.gate.set()
    await sender(broker).send(LANE, outgoing(1))
    [(exchange, key, body, kw)] = broker.published
    assert (exchange, key) == ("t.commands", "chat.send_message")
    assert body == {"event": "send_message", "data": {"n": 1}}
    assert (kw["correlation_id"], kw["message_id"], kw["reply_to"]) == ("c1", "c1", "gw.q")
    assert kw["headers"][h.DEADLINE] > h.epoch_ms()


async def test_commands_arriving_during_a_confirm_go_together_in_order() -> None:
    broker = GatedBroker()
    commands = sender(broker)
    first = asyncio.create_task(commands.send(LANE, outgoing(0)))
    await poll(lambda: len(broker.published) == 1, 5, "the first publish")  # unconfirmed
    rest = [asyncio.create_task(commands.send(LANE, outgoing(i))) for i in range(1, 4)]
    broker.gate.set()
    await asyncio.gather(first, *rest)
    [_, (exchange, key, body, kw)] = broker.published
    assert (exchange, key, kw["message_type"]) == ("t.commands", "chat.batch", h.BATCH)
    assert [(c["id"], c["data"]["n"]) for c in body] == [("c1", 1), ("c2", 2), ("c3", 3)]
    assert all(c["deadline"] > h.epoch_ms() for c in body)


async def test_a_large_batch_is_split_and_a_refusal_reaches_only_its_own_message() -> None:
    broker = GatedBroker(refuse={2})
    commands = sender(broker)
    first = asyncio.create_task(commands.send(LANE, outgoing(0)))
    await poll(lambda: len(broker.published) == 1, 5, "the first publish")
    count = MAX_PER_MESSAGE + 5
    rest = [asyncio.create_task(commands.send(LANE, outgoing(i))) for i in range(1, count + 1)]
    broker.gate.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    sizes = [len(body) if isinstance(body, list) else 1 for _, _, body, _ in broker.published]
    assert sizes == [1, MAX_PER_MESSAGE, 5]
    refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Overloaded)]
    assert refused == list(range(MAX_PER_MESSAGE + 1, count + 1))


@pytest.mark.parametrize("count", [1, 3])
async def test_transient_commands_go_straight_to_their_queue_with_a_ttl(count: int) -> None:
    broker = GatedBroker()
    broker.gate.set()
    commands = sender(broker)
    await asyncio.gather(*(commands.send(TRANSIENT, outgoing(i)) for i in range(count)))
    [(exchange, key, _, kw)] = broker.published
    assert (exchange, key) == ("", "t.calls.transient")
    assert (kw["confirm"], kw["persistent"]) == (False, False)
    assert 0 < kw["expiration_ms"] <= 9_000


def numbers(body: Any) -> list[int]:
    return [c["data"]["n"] for c in body] if isinstance(body, list) else [body["data"]["n"]]


async def test_with_two_in_flight_the_next_message_goes_before_the_first_confirm() -> None:
    broker = GatedBroker()
    commands = CommandSender(cast(Broker, cast(Any, broker)), "gw.q", in_flight=2)
    sent = [asyncio.create_task(commands.send(LANE, outgoing(0)))]
    await poll(lambda: len(broker.published) == 1, 5, "the first publish")
    sent.append(asyncio.create_task(commands.send(LANE, outgoing(1))))
    await poll(lambda: len(broker.published) == 2, 5, "the second, unconfirmed as well")
    sent += [asyncio.create_task(commands.send(LANE, outgoing(i))) for i in (2, 3)]
    for _ in range(5):  # both slots are taken: the third message waits for a confirm
        await asyncio.sleep(0)
    assert len(broker.published) == 2
    broker.gate.set()
    await asyncio.gather(*sent)
    assert [numbers(body) for _, _, body, _ in broker.published] == [[0], [1], [2, 3]]


async def test_a_split_batch_is_written_whole_before_a_later_batch_starts() -> None:
    broker = GatedBroker()
    commands = CommandSender(cast(Broker, cast(Any, broker)), "gw.q", in_flight=3)
    sent = [asyncio.create_task(commands.send(LANE, outgoing(0)))]
    await poll(lambda: len(broker.published) == 1, 5, "the first publish")
    count = MAX_PER_MESSAGE + 20  # one batch of two messages, while the first is unconfirmed
    sent += [asyncio.create_task(commands.send(LANE, outgoing(i))) for i in range(1, count + 1)]
    await poll(lambda: len(broker.published) == 3, 5, "both messages of the batch")
    sent.append(asyncio.create_task(commands.send(LANE, outgoing(count + 1))))
    await poll(lambda: len(broker.published) == 4, 5, "the next batch, in the third slot")
    broker.gate.set()
    await asyncio.gather(*sent)
    order = [n for _, _, body, _ in broker.published for n in numbers(body)]
    assert order == list(range(count + 2))


async def test_partitions_of_a_lane_are_batched_apart_each_in_its_order() -> None:
    broker = GatedBroker()
    commands = sender(broker)
    first = asyncio.create_task(commands.send(LANE, outgoing(0), 3))
    await poll(lambda: len(broker.published) == 1, 5, "the first publish")  # unconfirmed
    # partition 5 is not held up by partition 3's unconfirmed publish
    other = asyncio.create_task(commands.send(LANE, outgoing(1), 5))
    await poll(lambda: len(broker.published) == 2, 5, "the other partition's publish")
    rest = [asyncio.create_task(commands.send(LANE, outgoing(i), 3)) for i in (2, 3)]
    broker.gate.set()
    await asyncio.gather(first, other, *rest)
    [(_, key0, _, kw0), (_, key1, _, _), (_, key2, body2, kw2)] = broker.published
    assert (key0, key1, key2) == ("chat.p3.send_message", "chat.p5.send_message", "chat.p3.batch")
    assert [c["id"] for c in body2] == ["c2", "c3"]
    assert kw0["mandatory"] and kw2["mandatory"]


async def test_a_partition_without_a_queue_is_refused_at_once() -> None:
    """Gateway and chat disagree on IM_CHAT_PARTITIONS: nothing is lost in silence."""

    class Unroutable(GatedBroker):
        async def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> bool:
            await super().publish(exchange, routing_key, body, **kw)
            return not kw["mandatory"]

    broker = Unroutable()
    broker.gate.set()
    with pytest.raises(Unavailable, match="no queue for partition 9") as refused:
        await sender(broker).send(LANE, outgoing(0), 9)
    assert refused.value.retry_after_ms == 1_000  # never executed: safe to resend
    await sender(broker).send(LANE, outgoing(1))  # an unpartitioned lane is not mandatory
    assert [kw["mandatory"] for *_, kw in broker.published] == [True, False]
