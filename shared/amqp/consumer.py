"""A subscription to a queue, as it is started on a channel (again after every reconnect)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiormq.abc import AbstractChannel, DeliveredMessage

from shared.amqp.delivery import Delivery

OnDelivery = Callable[[Delivery], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Consumer:
    tag: str
    queue: str
    on_delivery: OnDelivery
    no_ack: bool
    arguments: dict[str, Any] | None = None  # of the subscription (x-priority)

    async def start(self, channel: AbstractChannel) -> None:
        """Consume on ``channel``: each message goes to ``on_delivery`` as a :class:`Delivery`
        settled on that channel (in a task of its own, as aiormq does)."""
        on_delivery = self.on_delivery

        async def deliver(message: DeliveredMessage) -> None:
            await on_delivery(Delivery(message, channel))

        await channel.basic_consume(
            self.queue,
            deliver,
            no_ack=self.no_ack,
            consumer_tag=self.tag,
            arguments=self.arguments,
        )
