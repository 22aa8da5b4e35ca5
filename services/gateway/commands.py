"""Commands out: what a gateway has for one service at one moment goes as one message.

A publish costs the same whether it carries one command or fifty: its confirm, the queue's
write, the delivery and the ack are each paid once per message, in the gateway, the broker
and the service alike. Nothing waits for a batch to fill, though: a lane's command goes out
at once while fewer than ``IM_PUBLISHES_IN_FLIGHT`` (2) messages of that lane wait for their
confirms, and the commands that arrive meanwhile go together in the next one. The busier the
lane, the larger its batches; a command never waits longer than one confirm.

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
        self._lanes: dict[Lane, Batcher[Outgoing]] = {}

    async def send(self, lane: Lane, outgoing: Outgoing) -> None:
        """Returns once the broker has the command (confirmed, for a durable lane). Raises
        :class:`Unavailable` (:class:`shared.errors.Overloaded` when its queue was full)."""
        await self.submit(lane, outgoing)
        if outgoing.refused is not None:
            raise outgoing.refused

    def submit(self, lane: Lane, outgoing: Outgoing) -> asyncio.Future[None]:
        """Queue the command; the future is done once the broker took it, or refused it
        (then :attr:`Outgoing.refused` says why)."""
        batcher = self._lanes.get(lane)
        if batcher is None:
            publish = partial(self.publish, lane)
            batcher = self._lanes[lane] = Batcher(publish, window_s=0.0, in_flight=self.in_flight)
        outgoing.queued_at = time.monotonic()
        return batcher.submit(outgoing)

    async def publish(self, lane: Lane, commands: list[Outgoing]) -> None:
        """Publish ``commands`` (in order, at most :data:`MAX_PER_MESSAGE` per message),
        marking those the broker refused. Every message is written before any confirm is
        awaited: a later batch, already allowed to start, must not come between them."""
        chunks = [
            commands[start : start + MAX_PER_MESSAGE]
            for start in range(0, len(commands), MAX_PER_MESSAGE)
        ]
        if len(chunks) == 1:
            await self._publish_chunk(lane, chunks[0])
        else:  # the tasks start in order, and each writes its message before it first waits
            await asyncio.gather(*(self._publish_chunk(lane, chunk) for chunk in chunks))

    async def _publish_chunk(self, lane: Lane, chunk: list[Outgoing]) -> None:
        metrics.labelled(metrics.COMMANDS_PER_MESSAGE, lane[0]).observe(len(chunk))
        try:
            if len(chunk) == 1:
                await self._publish_one(lane, chunk[0])
            else:
                await self._publish_batch(lane, chunk)
        except Unavailable as exc:
            for outgoing in chunk:
                outgoing.refused = exc
        done = time.monotonic()
        published = metrics.labelled(metrics.COMMAND_PUBLISH_SECONDS, lane[0])
        for outgoing in chunk:
            published.observe(done - outgoing.queued_at)

    async def _publish_one(self, lane: Lane, outgoing: Outgoing) -> None:
        transient = lane[1]
        start_by_ms = max(1, outgoing.deadline_ms - h.epoch_ms())
        await self.broker.publish(
            *self._destination(lane, str(outgoing.command["event"])),
            dumps_bytes(outgoing.command),
            persistent=not transient,
            confirm=not transient,
            reply_to=self.reply_to,
            correlation_id=outgoing.correlation_id,
            message_id=outgoing.correlation_id,
            headers={h.DEADLINE: outgoing.deadline_ms},
            expiration_ms=start_by_ms if transient else None,
        )

    async def _publish_batch(self, lane: Lane, chunk: list[Outgoing]) -> None:
        transient = lane[1]
        body = dumps_bytes(
            [{**o.command, "id": o.correlation_id, "deadline": o.deadline_ms} for o in chunk]
        )
        # the queue's TTL may drop it once its last command may no longer start
        start_by_ms = max(1, max(o.deadline_ms for o in chunk) - h.epoch_ms())
        await self.broker.publish(
            *self._destination(lane, "batch"),
            body,
            persistent=not transient,
            confirm=not transient,
            reply_to=self.reply_to,
            message_type=h.BATCH,
            expiration_ms=start_by_ms if transient else None,
        )

    def _destination(self, lane: Lane, event: str) -> tuple[str, str]:
        """(exchange, routing key): a service's commands exchange key, or straight to its
        transient queue."""
        service, transient = lane
        topology = self.broker.topology
        if transient:
            return "", topology.transient_queue(service)
        return topology.commands, f"{service}.{event}"
