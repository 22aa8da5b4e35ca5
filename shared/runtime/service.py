"""Runs one service: consumes its queue, dispatches to handlers, publishes their effects,
then acks. Every service is this runner plus a :class:`ServiceDefinition`.

Ack policy: a handler that returns → effects published with confirms → ack. A handler that
raises a :class:`RealtimeError` → an ``error`` reply → ack (the command was answered). Any
other exception → requeue; the quorum queue's delivery limit moves a command that keeps
failing to ``<ns>.<service>.dead`` (its sender is told ``internal`` on the last try).
Undecodable messages go straight to the dead-letter queue, and so do facts and timers whose
data does not fit their model (``shared/runtime/routes.py``). A command past its deadline is
dropped unexecuted (its sender has been told ``unavailable``), and counted.

A gateway sends the commands it has for one service at one moment as one message (a batch):
each is handled as if it had come alone, the message is acked once, and a command that failed
goes back to the queue alone (``x-attempts`` counts its tries), or to the dead letters.

A partitioned service (chat) takes its client commands from partitions, one replica at a
time on each (:mod:`shared.runtime.partitions`); its service queue has its facts, timers and
retries.

Transient commands (``EventSpec.transient``) come from their own queue and are handled one at
a time, in order; their effects are published without confirms and a failure is answered,
never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.kept_consumer import QueueShape
from shared.auth import Identity
from shared.errors import InternalError, RealtimeError
from shared.logs import Tally, connection_id_var, user_id_var
from shared.protocol.envelope import Reply
from shared.protocol.registry import CLIENT_EVENTS
from shared.runtime.in_hand import InHand, commands_of
from shared.runtime.outbox import Outbox, Push, Request
from shared.runtime.outcomes import Outcomes, Verdict
from shared.runtime.partitions import Partitions
from shared.runtime.publisher import Outcome, Publisher
from shared.runtime.routes import Kind, MalformedWork, Route, Routes, validate
from shared.settings import Settings

log = logging.getLogger(__name__)
DRAIN_S = 10.0  # SIGTERM: how long the commands in hand may take to finish

BackgroundJob = Callable[["ServiceRunner"], Coroutine[Any, Any, None]]


@dataclass
class ServiceDefinition:
    """Everything that differs between two services."""

    name: str
    handlers: Routes  # every command, fact and timer it takes (shared/runtime/routes.py)
    workers: int = 1
    startup: Callable[[], Awaitable[None]] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None
    background: Sequence[BackgroundJob] = field(default_factory=tuple)

    @property
    def facts(self) -> list[str]:
        """The domain facts it follows (its queue is bound to them)."""
        return [name for name, route in self.handlers.items() if route.kind is Kind.FACT]


class ServiceRunner:
    def __init__(self, definition: ServiceDefinition, settings: Settings, broker: Broker) -> None:
        self.definition = definition
        self.settings = settings
        self.broker = broker
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._transient_inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self.publisher = Publisher(broker, definition.name)
        self.outcomes = Outcomes(self.publisher, broker)
        self.expired = Tally(log, f"{definition.name}: dropped %d commands past their deadline")
        self.partitions = Partitions(broker, settings, definition.name, self._inbox.put)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish the commands in hand and return."""
        d = self.definition
        if d.startup is not None:
            await d.startup()
        queue = await self._declare_queues()
        consumers = [await self.broker.consume(queue.name, self._inbox.put)]
        if self.partitions.count:
            await self.partitions.declare()
            await self.partitions.take_index()
            await self.partitions.consume_own()
        transient = self._transient_queue()
        if transient is not None:
            # declared by its consumer: not durable, it lives on one node, and is declared
            # again when that node dies
            name, shape = transient
            consumers.append(
                await self.broker.consume(name, self._transient_inbox.put, recreate=shape)
            )
        log.info("service %s consuming %s", d.name, queue.name)
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(self._work(self._inbox)) for _ in range(d.workers)]
                if transient is not None:
                    workers.append(group.create_task(self._work(self._transient_inbox, True)))
                extras = [group.create_task(job(self)) for job in d.background]
                if self.partitions.count:
                    extras.append(group.create_task(self.partitions.standby()))
                await stop.wait()
                self.partitions.stop()
                for tag in consumers:
                    await self.broker.cancel(tag)
                await self._drain()
                for task in (*extras, *workers):
                    task.cancel()
        finally:
            if d.shutdown is not None:
                await d.shutdown()

    async def _declare_queues(self) -> Any:
        t, name = self.broker.topology, self.definition.name
        dead = await self.broker.declare_queue(
            t.dead_queue(name), arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(t.dead_letters, name)
        queue = await self.broker.declare_queue(
            t.service_queue(name),
            arguments=t.service_queue_arguments(
                name, self.settings.delivery_limit, self.settings.queue_max_length
            ),
        )
        partitioned = self.partitions.count > 0
        await queue.bind(t.commands, t.service_binding(name, partitioned))
        if partitioned:  # a queue of a deployment before partitions had the wider key
            await queue.unbind(t.commands, t.service_binding(name, partitioned=False))
        for fact in self.definition.facts:
            await queue.bind(t.domain, fact)
        return queue

    def _transient_queue(self) -> tuple[str, QueueShape] | None:
        """The light path's queue, when this service handles any transient event."""
        name = self.definition.name
        if not any(
            spec.transient and spec.service == name and spec.name in self.definition.handlers
            for spec in CLIENT_EVENTS.values()
        ):
            return None
        ttl_ms = round(self.settings.request_timeout_s * 1000)
        arguments = self.broker.topology.transient_queue_arguments(
            self.settings.transient_max_length, ttl_ms
        )
        return self.broker.topology.transient_queue(name), QueueShape(False, arguments)

    async def _drain(self) -> None:
        """SIGTERM: finish every command already delivered to this replica (the background
        jobs, such as chat's writer, still run), within ``DRAIN_S``; whatever is left is
        requeued by the broker when the connection closes."""
        inboxes = (self._inbox, self._transient_inbox)
        waiting = sum(inbox.qsize() for inbox in inboxes)
        try:
            await asyncio.wait_for(asyncio.gather(*(i.join() for i in inboxes)), DRAIN_S)
            log.info("%s: finished the commands in hand (%d queued)", self.definition.name, waiting)
        except TimeoutError:
            log.warning("%s: commands still in hand after %.0f s", self.definition.name, DRAIN_S)

    async def _work(self, inbox: asyncio.Queue[Delivery], transient: bool = False) -> None:
        """One worker. The transient inbox has exactly one, so that one sender's signals are
        relayed in the order sent."""
        while True:
            message = await inbox.get()
            try:
                await self.process(message, transient)
            except Exception:
                log.exception("failed to settle a message")
            finally:
                inbox.task_done()

    async def process(self, message: Delivery, transient: bool = False) -> None:
        """Handle one delivery (a command, or a gateway's batch of them) and settle it."""
        commands = commands_of(message)
        if commands is None:
            log.error("undecodable message on %s dead-lettered", self.definition.name)
            await message.reject(requeue=False)
            return
        now_ms = h.epoch_ms()
        live = [one for one in commands if one.deadline_ms is None or one.deadline_ms >= now_ms]
        if len(live) < len(commands):
            self.expired.add(len(commands) - len(live))
        if message.type == h.BATCH:
            await self._process_batch(message, live, transient)
        elif not live:
            await message.ack()
        else:
            await self._process_one(message, live[0], transient)

    async def _process_one(self, message: Delivery, in_hand: InHand, transient: bool) -> None:
        if self.definition.workers > 1 and not transient:
            # Started from the loop's queue, like the commands of a batch (see
            # _process_batch): handlers then start in delivery order, whatever mix of single
            # and batched messages the workers take.
            verdict = await asyncio.create_task(self._handle(in_hand, transient))
        else:
            verdict = await self._handle(in_hand, transient)
        if verdict is Verdict.DONE:
            await message.ack()
        elif verdict is Verdict.RETRY:
            await message.nack(requeue=True)
        else:
            await message.reject(requeue=False)

    async def _process_batch(self, message: Delivery, live: list[InHand], transient: bool) -> None:
        """Every command of a batch, started in order (one after another where the service
        handles one command at a time); then one ack. A command that failed goes back to
        the queue (or to the dead letters) alone, so its neighbours are not run again.

        The effects of transient commands, and of a service running many commands at once,
        are published as they are decided, bundled with those decided at the same moment
        (see :meth:`Outcomes.publish_in_turn`): their handlers publish only through their outbox.
        Where a service runs one command at a time, a handler may publish from inside
        (``deliver_now``), so each command's effects go out before the next one starts, as
        if it had come alone."""
        if transient:  # one at a time, in order; their effects bundled
            decided = [await self._decide(one, transient) for one in live]
            in_turn = self.outcomes.publish_in_turn
            verdicts = list(await asyncio.gather(*(in_turn(d, transient) for d in decided)))
        elif self.definition.workers == 1:  # one at a time, each published before the next
            verdicts = [await self._handle(one, transient) for one in live]
        else:  # started in order, run together, their effects bundled as they are decided
            verdicts = list(await asyncio.gather(*(self._handle(one, transient) for one in live)))
        try:
            for one, verdict in zip(live, verdicts, strict=True):
                if verdict is not Verdict.DONE and not transient:
                    dead = verdict is Verdict.DEAD
                    await self.publisher.again(
                        one.command,
                        one.command_id,
                        one.deadline_ms,
                        one.reply_to,
                        one.attempts + 1,
                        dead,
                    )
        except RealtimeError:  # the broker is away: the whole batch again, later
            log.warning("could not requeue the failed commands of a batch; will retry it")
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _handle(self, in_hand: InHand, transient: bool) -> Verdict:
        """Run one command's handler and publish its effects and reply."""
        decided = await self._decide(in_hand, transient)
        if isinstance(decided, Verdict):
            return decided
        if self.definition.workers > 1:  # handlers publish only through their outbox
            return await self.outcomes.publish_in_turn(decided, transient)
        return await self.outcomes.publish(decided, transient)

    async def _decide(self, in_hand: InHand, transient: bool) -> Outcome | Verdict:
        """Run one command's handler: what it left to publish (its answer, a refusal
        included), or the verdict on a command that crashed."""
        command = in_hand.command
        user_id_var.set(command.user.id if command.user else None)
        connection_id_var.set(command.origin.connection_id if command.origin else None)
        try:
            route = self.definition.handlers.get(command.event)
            if route is None:
                raise InternalError(f"{self.definition.name} has no handler for {command.event}")
            request = self._request(in_hand, route)
            await route.handler(request)
            reply = Reply(ok=True, data=request.out.reply or {})
            return Outcome(
                request.out, reply, in_hand.reply_to, in_hand.correlation_id, in_hand.redelivered
            )
        except RealtimeError as exc:
            reply = Reply(
                ok=False, code=str(exc.code), message=exc.message, retry_after_ms=exc.retry_after_ms
            )
            return Outcome(Outbox(), reply, in_hand.reply_to, in_hand.correlation_id)
        except MalformedWork as exc:
            log.error("malformed %s dead-lettered: %s", command.event, exc)
            return Verdict.DEAD
        except Exception:
            if not transient and in_hand.attempts + 1 < self.settings.delivery_limit:
                log.exception("%s failed; will retry", command.event)
                return Verdict.RETRY
            log.exception("%s failed for the last time; dead-lettering", command.event)
            try:  # tell the sender, if the broker takes it; dead-letter the command anyway
                failed = Reply(ok=False, code="internal", message="internal error")
                await self._reply(in_hand, failed)
            except RealtimeError:
                log.warning("could not tell the sender of %s it failed", command.event)
            return Verdict.DEAD

    def _request(self, in_hand: InHand, route: Route) -> Request:
        command = in_hand.command
        user = Identity.from_dict(command.user.model_dump()) if command.user else None
        return Request(
            event=command.event,
            data=command.data,
            payload=validate(route, command.data, user),
            user=user,
            origin=command.origin,
            redelivered=in_hand.redelivered,
            command_id=in_hand.command_id,
            deliver_now=self.publish_push,
        )

    async def _reply(self, in_hand: InHand, reply: Reply) -> None:
        if in_hand.reply_to and in_hand.correlation_id:
            await self.publisher.reply(reply, in_hand.reply_to, in_hand.correlation_id)

    async def publish_push(self, push: Push) -> bool:
        """Publish one push now; False when no gateway holds the addressed user/connection."""
        return await self.publisher.push(push)

    async def emit(self, fact: str, data: dict[str, Any]) -> None:
        """Publish a domain fact outside a handler (from a background job)."""
        await self.publisher.fact(fact, data)

    async def command(self, event: str, data: dict[str, Any]) -> None:
        """Send this service a command without a user (a background job handing work to
        whichever replica takes it, with the outbox and ack policy of a handler)."""
        await self.publisher.command(event, data)
