"""A consumer of a non-durable queue that the broker may lose under it.

A non-durable classic queue lives on the one node that declared it; when that node dies, the
cluster deletes the queue and cancels its consumers, also those connected to other nodes. And
consuming a queue that is gone is a channel error, which would end every other consumer of
the channel. So this consumer has a channel of its own: it declares its queue, consumes it,
and whenever the broker cancels it or the channel closes (the connection went), does both
again, on whichever node the connection has reached by then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustConnection

from shared.amqp.consumer import Consumer

log = logging.getLogger(__name__)
RETRY_S = 1.0  # between two attempts to declare and consume again


@dataclass(frozen=True, slots=True)
class QueueShape:
    """How to declare a queue again when the broker lost it (its node died)."""

    durable: bool
    arguments: dict[str, Any] | None = None


class KeptConsumer:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        consumer: Consumer,
        shape: QueueShape,
        *,
        prefetch: int,
    ) -> None:
        self.queue = consumer.queue
        self._connection = connection
        self._consumer = consumer
        self._shape = shape
        self._prefetch = prefetch
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._consuming = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float) -> None:
        """Start consuming; return once the first consumer is registered."""
        self._task = asyncio.create_task(self._keep())
        async with asyncio.timeout(timeout_s):
            await self._consuming.wait()

    async def _keep(self) -> None:
        while not self._stopped:
            try:
                await self._consume_until_lost()
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                log.warning("could not consume %s (%r); trying again", self.queue, exc)
            if not self._stopped:
                await asyncio.sleep(RETRY_S)

    async def _consume_until_lost(self) -> None:
        self._consuming.clear()
        await self._connection.connected.wait()
        transport = self._connection.transport
        if transport is None:
            raise ConnectionError("no connection to the broker")
        channel = self._channel = await transport.connection.channel()
        cancelled = asyncio.Event()
        channel.on_consumer_cancel_callbacks.add(lambda _frame: cancelled.set())
        try:
            shape = self._shape
            await channel.queue_declare(
                self.queue, durable=shape.durable, arguments=shape.arguments
            )
            await channel.basic_qos(prefetch_count=self._prefetch)
            await self._consumer.start(channel)
            self._consuming.set()
            waiting = asyncio.create_task(cancelled.wait())
            try:
                await asyncio.wait((channel.closing, waiting), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if not self._stopped:
                log.warning("lost %s; declaring and consuming it again", self.queue)
        finally:
            if not self._stopped and not channel.is_closed:
                await channel.close()

    async def stop(self) -> None:
        """Consume no more; the channel stays open, so messages in hand can still be settled."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        channel = self._channel
        if channel is not None and not channel.is_closed:
            try:
                await channel.basic_cancel(self._consumer.tag)
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
                pass  # the channel is gone, and the consumer with it

    async def close(self) -> None:
        await self.stop()
        channel = self._channel
        if channel is not None and not channel.is_closed:
            await channel.close()
