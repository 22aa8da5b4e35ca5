"""Commands out: what a gateway has for one service at one moment goes as one message.

A publish costs the same whether it carries one command or fifty: its confirm, the queue's
write, the delivery and the ack are each paid once per message, in the gateway, the broker
and the service alike. Nothing waits for a batch to fill, though: a lane's command goes out
at once while no message of that lane waits for its confirm (``IM_PUBLISHES_IN_FLIGHT``, 1 by
default, allows more), and the commands that arrive meanwhile go together in the next one.
The busier the lane, the larger its batches; a command never waits longer than one confirm.

A partitioned service (chat) has one lane per partition: its commands are batched per
partition and published to that partition's queue (``<service>.p<n>.<event>``), so the
commands of one connection for one partition keep their order, as the service's single active
consumer of the partition needs (:mod:`shared.partitions`).

One command alone is sent as a plain command message; several as one :data:`BATCH` message
(a list of :class:`shared.protocol.envelope.BatchedCommand`). Each command keeps its own id
and deadline, and learns on its own whether the broker took it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from services.gateway import metrics
from services.gateway.admission import Lane
from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.batching import Batcher
from shared.errors import Unavailable
from shared.protocol.envelope import dumps_bytes

MAX_PER_MESSAGE = 100  # commands in one message (bounded queues count messages)
UNROUTED_RETRY_MS = 1_000
Route = tuple[Lane, int | None]  # a lane, and the partition of a partitioned service


@dataclass(slots=True)
class Outgoing:
    """One command on its way: the shape of :class:`shared.protocol.envelope.Command`."""

    command: dict[str, Any]
    correlation_id: str
    deadline_ms: int  # epoch ms by which a service must have started it
    refused: Unavailable | None = field(default=None)  # what the broker said, if it refused
    queued_at: float = field(default=0.0)


class CommandSender:
    """``in_flight``: messages of one lane that may wait for their confirms at once (the
    next batch goes out once the previous one is written, not confirmed)."""

    def __init__(self, broker: Broker, reply_to: str, in_flight: int = 1) -> None:
        self.broker = broker
        self.reply_to = reply_to
        self.in_flight = in_flight
        self._lanes: dict[Route, Batcher[Outgoing]] = {}

    async def send(self, lane: Lane, outgoing: Outgoing, partition: int | None = None) -> None:
        """Returns once the broker has the command (confirmed, for a durable lane). Raises
        :class:`Unavailable` (:class:`shared.errors.Overloaded` when its queue was full)."""
        await self.submit(lane, outgoing, partition)
        if outgoing.refused is not None:
            raise outgoing.refused

    def submit(
        self, lane: Lane, outgoing: Outgoing, partition: int | None = None
    ) -> asyncio.Future[None]:
        """Queue the command (for ``partition`` of a partitioned service); the future is done
        once the broker took it, or refused it (then :attr:`Outgoing.refused` says why)."""
        route = (lane, partition)
        batcher = self._lanes.get(route)
        if batcher is None:
            publish = partial(self.publish, route)
            batcher = Batcher(publish, window_s=0.0, in_flight=self.in_flight)
            self._lanes[route] = batcher
        outgoing.queued_at = time.monotonic()
        return batcher.submit(outgoing)

    async def publish(self, route: Route, commands: list[Outgoing]) -> None:
        """Publish ``commands`` (in order, at most :data:`MAX_PER_MESSAGE` per message),
        marking those the broker refused. Every message is written before any confirm is
        awaited: a later batch, already allowed to start, must not come between them."""
        chunks = [
            commands[start : start + MAX_PER_MESSAGE]
            for start in range(0, len(commands), MAX_PER_MESSAGE)
        ]
        if len(chunks) == 1:
            await self._publish_chunk(route, chunks[0])
        else:  # the tasks start in order, and each writes its message before it first waits
            await asyncio.gather(*(self._publish_chunk(route, chunk) for chunk in chunks))

    async def _publish_chunk(self, route: Route, chunk: list[Outgoing]) -> None:
        lane = route[0]
        metrics.labelled(metrics.COMMANDS_PER_MESSAGE, lane[0]).observe(len(chunk))
        try:
            if len(chunk) == 1:
                await self._publish_one(route, chunk[0])
            else:
                await self._publish_batch(route, chunk)
        except Unavailable as exc:
            for outgoing in chunk:
                outgoing.refused = exc
        done = time.monotonic()
        published = metrics.labelled(metrics.COMMAND_PUBLISH_SECONDS, lane[0])
        for outgoing in chunk:
            published.observe(done - outgoing.queued_at)

    async def _publish_one(self, route: Route, outgoing: Outgoing) -> None:
        transient = route[0][1]
        start_by_ms = max(1, outgoing.deadline_ms - h.epoch_ms())
        await self._publish(
            route,
            str(outgoing.command["event"]),
            dumps_bytes(outgoing.command),
            persistent=not transient,
            confirm=not transient,
            reply_to=self.reply_to,
            correlation_id=outgoing.correlation_id,
            message_id=outgoing.correlation_id,
            headers={h.DEADLINE: outgoing.deadline_ms},
            expiration_ms=start_by_ms if transient else None,
        )

    async def _publish_batch(self, route: Route, chunk: list[Outgoing]) -> None:
        transient = route[0][1]
        body = dumps_bytes(
            [{**o.command, "id": o.correlation_id, "deadline": o.deadline_ms} for o in chunk]
        )
        # the queue's TTL may drop it once its last command may no longer start
        start_by_ms = max(1, max(o.deadline_ms for o in chunk) - h.epoch_ms())
        await self._publish(
            route,
            "batch",
            body,
            persistent=not transient,
            confirm=not transient,
            reply_to=self.reply_to,
            message_type=h.BATCH,
            expiration_ms=start_by_ms if transient else None,
        )

    async def _publish(self, route: Route, event: str, body: bytes, **options: Any) -> None:
        """Publish to ``route``'s queue. A partition's command is published ``mandatory``: no
        queue for it means gateway and service disagree on the number of partitions (or the
        service never ran), and the sender hears ``unavailable`` at once."""
        (service, _), partition = route
        exchange, key = self._destination(route, event)
        routed = await self.broker.publish(
            exchange, key, body, mandatory=partition is not None, **options
        )
        if not routed:  # never reached a service: safe to resend, as a refusal says
            raise Unavailable(
                f"the {service} service has no queue for partition {partition}",
                retry_after_ms=UNROUTED_RETRY_MS,
            )

    def _destination(self, route: Route, event: str) -> tuple[str, str]:
        """(exchange, routing key): a service's commands exchange key (its partition's, for a
        partitioned service), or straight to its transient queue."""
        (service, transient), partition = route
        topology = self.broker.topology
        if transient:
            return "", topology.transient_queue(service)
        if partition is not None:
            return topology.commands, topology.partition_key(service, partition, event)
        return topology.commands, f"{service}.{event}"
