"""A replica's partitions (no broker): its own share at once with the higher priority, the
others later as a standby, and nothing taken once it stops."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.topology import Topology
from shared.runtime.partitions import OWN_PRIORITY, STANDBY_PRIORITY, Partitions
from shared.settings import Settings


@dataclass
class RecordingBroker:
    topology: Topology = field(default_factory=lambda: Topology("t"))
    consumed: list[tuple[str, int]] = field(default_factory=list)
    taker: Any = None
    free_slot: int | None = None
    asked: list[str] = field(default_factory=list)

    async def hold_first_free(self, names: list[str]) -> int | None:
        self.asked = names
        return self.free_slot

    async def consume(self, queue: str, on_delivery: Any, **kw: Any) -> str:
        self.consumed.append((queue, kw["arguments"]["x-priority"]))
        self.taker = on_delivery
        return f"tag{len(self.consumed)}"


def partitions(broker: RecordingBroker, on_delivery: Any = None, **settings: Any) -> Partitions:
    return Partitions(
        cast(Broker, cast(Any, broker)),
        Settings(**settings),
        "chat",
        on_delivery or (lambda _: asyncio.sleep(0)),
    )


async def test_a_replica_takes_its_share_first_and_stands_by_for_the_rest() -> None:
    broker = RecordingBroker()
    mine = partitions(broker, chat_partitions=8, replicas=3, replica_index=1, partition_standby_s=0)
    assert (mine.own(), mine.others()) == ([1, 4, 7], [0, 2, 3, 5, 6])
    await mine.consume_own()
    await mine.standby()
    assert broker.consumed == [
        *((f"t.chat.p{p}", OWN_PRIORITY) for p in (1, 4, 7)),
        *((f"t.chat.p{p}", STANDBY_PRIORITY) for p in (0, 2, 3, 5, 6)),
    ]


async def test_one_replica_owns_every_partition_and_has_nothing_to_stand_by_for() -> None:
    broker = RecordingBroker()
    alone = partitions(broker, chat_partitions=4)
    assert (alone.own(), alone.others()) == ([0, 1, 2, 3], [])
    await alone.standby()
    assert broker.consumed == []


async def test_after_stop_deliveries_are_left_for_the_next_replica() -> None:
    taken: list[str] = []

    async def take(delivery: Any) -> None:
        taken.append(delivery)

    broker = RecordingBroker()
    mine = partitions(broker, take, chat_partitions=2)
    await mine.consume_own()
    await broker.taker(cast(Delivery, "first"))
    mine.stop()
    await broker.taker(cast(Delivery, "second"))  # neither handled nor settled
    assert taken == ["first"]


async def test_a_replica_without_an_index_takes_the_first_free_one() -> None:
    broker = RecordingBroker(free_slot=2)
    mine = partitions(broker, chat_partitions=8, replicas=3)
    await mine.take_index()
    assert broker.asked == ["t.chat.replica.0", "t.chat.replica.1", "t.chat.replica.2"]
    assert (mine.index, mine.own()) == (2, [2, 5])


async def test_a_replica_finding_every_index_held_only_stands_by() -> None:
    broker = RecordingBroker(free_slot=None)
    extra = partitions(broker, chat_partitions=4, replicas=2, partition_standby_s=0)
    await extra.take_index()
    await extra.consume_own()
    await extra.standby()
    assert (extra.own(), extra.others()) == ([], [0, 1, 2, 3])
    assert {priority for _, priority in broker.consumed} == {STANDBY_PRIORITY}


async def test_a_given_index_or_a_single_replica_asks_the_broker_nothing() -> None:
    for settings in ({"replicas": 3, "replica_index": 0}, {}):
        broker = RecordingBroker(free_slot=1)
        mine = partitions(broker, chat_partitions=6, **settings)
        await mine.take_index()
        assert mine.index == 0 and broker.asked == []


def test_partition_keys_are_not_matched_by_the_service_queue() -> None:
    """``chat.*`` matches exactly two words; a partition's key has three."""
    t = Topology("t")
    assert t.service_binding("chat", partitioned=True) == "chat.*"
    assert t.service_binding("calls", partitioned=False) == "calls.#"
    assert t.partition_key("chat", 3, "send_message") == "chat.p3.send_message"
    assert t.partition_queue("chat", 3) == "t.chat.p3"
    arguments = t.partition_queue_arguments("chat", 5, 100)
    assert arguments["x-single-active-consumer"] is True
    assert arguments["x-max-length"] == 100 and arguments["x-overflow"] == "reject-publish"
    assert arguments["x-delivery-limit"] == 5 and arguments["x-queue-type"] == "quorum"


async def test_replicas_beyond_the_partitions_are_told_they_only_stand_by(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = RecordingBroker()
    crowded = partitions(broker, chat_partitions=2, replicas=3, replica_index=2)
    with caplog.at_level(logging.WARNING, logger="shared.runtime.partitions"):
        await crowded.take_index()
    assert crowded.own() == []
    assert "3 replicas of chat share 2 partitions: 1 of them only stand by" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shared.runtime.partitions"):
        await partitions(broker, chat_partitions=4, replicas=2, replica_index=0).take_index()
    assert caplog.text == ""
