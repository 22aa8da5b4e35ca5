"""A partitioned service's client commands: one quorum queue per partition, each with one
active consumer, so the commands of one partition (chat: of one conversation) are started in
the order they were queued, with any number of replicas (see :mod:`shared.partitions`).

Every replica consumes every partition, and the broker keeps one consumer of each active. When
the active one goes (a crash, a lost connection), the broker activates the next: the commands
the first had not acknowledged come back to it first, in their order. RabbitMQ 3.x activates
the first consumer to arrive, so a replica subscribes at once to *its* partitions (those with
``p % IM_REPLICAS == index``) and to the others ``IM_PARTITION_STANDBY_S`` later, as a standby:
when every replica starts within that time, each is active on its own share. The index is
``IM_REPLICA_INDEX``, or else the first one no running replica holds (an exclusive queue per
index, freed by the broker when its holder's connection closes); a replica finding every index
held owns no partition and only stands by. Its own share is also subscribed with the higher
``x-priority``, which RabbitMQ 4's single active consumer is documented to honour (a replica
that comes back takes its partitions over once the standby settled what it holds); 3.x
ignores it.

Stopping: a partition's consumer is not cancelled, since that would activate the next replica
while this one still runs commands of the partition. What is delivered after the stop is left
unsettled, and goes back to the queue (in order, ahead of the rest) when the connection closes,
after the commands in hand are finished.
"""

from __future__ import annotations

import asyncio
import logging

from shared.amqp.broker import Broker
from shared.amqp.consumer import OnDelivery
from shared.amqp.delivery import Delivery
from shared.settings import Settings

log = logging.getLogger(__name__)

OWN_PRIORITY = 10  # x-priority of a replica's own partitions (RabbitMQ 4 prefers it)
STANDBY_PRIORITY = 0


class Partitions:
    def __init__(
        self, broker: Broker, settings: Settings, service: str, on_delivery: OnDelivery
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.service = service
        self.count = settings.partitions(service)
        self._on_delivery = on_delivery
        self._stopping = False
        single = settings.replicas == 1
        self.index: int | None = 0 if single else settings.replica_index

    async def take_index(self) -> None:
        """Without ``IM_REPLICA_INDEX``: the first index no running replica holds."""
        s = self.settings
        if self.index is None:
            slots = [self.broker.topology.replica_slot(self.service, i) for i in range(s.replicas)]
            self.index = await self.broker.hold_first_free(slots)
        log.info("%s is replica %s of %d", self.service, self.index, s.replicas)
        if s.replicas > self.count:
            log.warning(
                "%d replicas of %s share %d partitions: %d of them only stand by (raise "
                "IM_CHAT_PARTITIONS on every gateway and replica to spread the work)",
                s.replicas,
                self.service,
                self.count,
                s.replicas - self.count,
            )

    def own(self) -> list[int]:
        """The partitions this replica subscribes to first."""
        return [p for p in range(self.count) if p % self.settings.replicas == self.index]

    def others(self) -> list[int]:
        return [p for p in range(self.count) if p % self.settings.replicas != self.index]

    async def declare(self) -> None:
        t, s = self.broker.topology, self.settings
        arguments = t.partition_queue_arguments(self.service, s.delivery_limit, s.queue_max_length)
        for partition in range(self.count):
            queue = await self.broker.declare_queue(
                t.partition_queue(self.service, partition), arguments=arguments
            )
            await queue.bind(t.commands, t.partition_key(self.service, partition, "*"))

    async def consume_own(self) -> None:
        own = self.own()
        await self._consume(own, OWN_PRIORITY)
        log.info("%s first on partitions %s of %d", self.service, own, self.count)

    async def standby(self) -> None:
        """Join the other replicas' partitions, after they had the time to start."""
        others = self.others()
        if not others:
            return
        await asyncio.sleep(self.settings.partition_standby_s)
        await self._consume(others, STANDBY_PRIORITY)
        log.info("%s standing by for partitions %s", self.service, others)

    def stop(self) -> None:
        """Take no more deliveries (see the module's docstring)."""
        self._stopping = True

    async def _consume(self, partitions: list[int], priority: int) -> None:
        topology = self.broker.topology
        for partition in partitions:
            await self.broker.consume(
                topology.partition_queue(self.service, partition),
                self._take,
                arguments={"x-priority": priority},
            )

    async def _take(self, delivery: Delivery) -> None:
        if self._stopping:
            return  # unsettled: the broker requeues it when the connection closes
        await self._on_delivery(delivery)
