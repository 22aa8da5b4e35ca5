"""Runs one service: consumes its queue, dispatches to handlers, publishes their effects,
then acks. Every service is this runner plus a :class:`ServiceDefinition`.

Ack policy: a handler that returns → effects published with confirms → ack. A handler that
raises a :class:`RealtimeError` → an ``error`` reply → ack (the command was answered). Any
other exception → requeue; the quorum queue's delivery limit moves a command that keeps
failing to ``<ns>.<service>.dead`` (its sender is told ``internal`` on the last try).
Undecodable messages go straight to the dead-letter queue. A command past its deadline is
dropped unexecuted (its sender has been told ``unavailable``), and counted.

Transient commands (``EventSpec.transient``) come from their own queue and are handled one at
a time, in order; their effects are published without confirms and a failure is answered,
never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.auth import Identity, Role
from shared.errors import InternalError, RealtimeError
from shared.logs import Tally, connection_id_var, user_id_var
from shared.protocol.envelope import Command, Reply
from shared.protocol.registry import CLIENT_EVENTS, authorize, validate_payload
from shared.runtime.outbox import Outbox, Push, Request
from shared.runtime.publisher import Publisher
from shared.settings import Settings

log = logging.getLogger(__name__)
DRAIN_S = 10.0  # SIGTERM: how long the commands in hand may take to finish

Handler = Callable[[Request], Awaitable[None]]
BackgroundJob = Callable[["ServiceRunner"], Coroutine[Any, Any, None]]


@dataclass
class ServiceDefinition:
    """Everything that differs between two services."""

    name: str
    handlers: Mapping[str, Handler]
    facts: Sequence[str] = ()
    workers: int = 1
    startup: Callable[[], Awaitable[None]] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None
    background: Sequence[BackgroundJob] = field(default_factory=tuple)


class ServiceRunner:
    def __init__(self, definition: ServiceDefinition, settings: Settings, broker: Broker) -> None:
        self.definition = definition
        self.settings = settings
        self.broker = broker
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._transient_inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self.publisher = Publisher(broker, definition.name)
        self.expired = Tally(log, f"{definition.name}: dropped %d commands past their deadline")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish the commands in hand and return."""
        d = self.definition
        if d.startup is not None:
            await d.startup()
        queue = await self._declare_queues()
        consumers = [await self.broker.consume(queue.name, self._inbox.put)]
        transient = await self._declare_transient_queue()
        if transient is not None:
            consumers.append(await self.broker.consume(transient.name, self._transient_inbox.put))
        log.info("service %s consuming %s", d.name, queue.name)
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(self._work(self._inbox)) for _ in range(d.workers)]
                if transient is not None:
                    workers.append(group.create_task(self._work(self._transient_inbox, True)))
                extras = [group.create_task(job(self)) for job in d.background]
                await stop.wait()
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
        await queue.bind(t.commands, f"{name}.#")
        for fact in self.definition.facts:
            await queue.bind(t.domain, fact)
        return queue

    async def _declare_transient_queue(self) -> Any:
        """The light path's queue, when this service handles any transient event."""
        name = self.definition.name
        if not any(
            spec.transient and spec.service == name and spec.name in self.definition.handlers
            for spec in CLIENT_EVENTS.values()
        ):
            return None
        ttl_ms = round(self.settings.request_timeout_s * 1000)
        return await self.broker.declare_queue(
            self.broker.topology.transient_queue(name),
            durable=False,
            arguments=self.broker.topology.transient_queue_arguments(
                self.settings.transient_max_length, ttl_ms
            ),
        )

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
        if h.is_past_deadline(message.headers):
            self.expired.add()
            await message.ack()
            return
        try:
            command = Command.model_validate_json(message.body)
        except ValidationError:
            log.error("undecodable message on %s dead-lettered", self.definition.name)
            await message.reject(requeue=False)
            return
        user_id_var.set(command.user.id if command.user else None)
        connection_id_var.set(command.origin.connection_id if command.origin else None)
        outbox: Outbox
        try:
            request = self._request(command, message)
            handler = self.definition.handlers.get(command.event)
            if handler is None:
                raise InternalError(f"{self.definition.name} has no handler for {command.event}")
            await handler(request)
            outbox = request.out
            reply = Reply(ok=True, data=outbox.reply or {})
        except RealtimeError as exc:
            outbox = Outbox()
            reply = Reply(
                ok=False, code=str(exc.code), message=exc.message, retry_after_ms=exc.retry_after_ms
            )
        except Exception:
            if transient or self._last_attempt(message):
                log.exception("%s failed for the last time; dead-lettering", command.event)
                try:  # tell the sender, if the broker takes it; dead-letter the command anyway
                    await self._reply(
                        message, Reply(ok=False, code="internal", message="internal error")
                    )
                except RealtimeError:
                    log.warning("could not tell the sender of %s it failed", command.event)
                finally:
                    await message.reject(requeue=False)
            else:
                log.exception("%s failed; will retry", command.event)
                await message.nack(requeue=True)
            return
        try:
            await self.publisher.outcome(
                outbox, reply, message.reply_to, message.correlation_id, confirm=not transient
            )
        except RealtimeError:
            if transient:
                await message.ack()  # not retried: the next signal or typing replaces it
                return
            log.warning("could not publish the effects of %s; will retry", command.event)
            await message.nack(requeue=True)
            return
        await message.ack()

    def _request(self, command: Command, message: Delivery) -> Request:
        user = Identity.from_dict(command.user.model_dump()) if command.user else None
        payload = None
        spec = CLIENT_EVENTS.get(command.event)
        if spec is not None:
            if user is None:
                raise InternalError(f"client event {command.event} without a user")
            authorize(spec, Role(user.role))
            payload = validate_payload(spec, command.data)
        return Request(
            event=command.event,
            data=command.data,
            payload=payload,
            user=user,
            origin=command.origin,
            redelivered=bool(message.redelivered),
            command_id=message.message_id,
            deliver_now=self.publish_push,
        )

    def _last_attempt(self, message: Delivery) -> bool:
        count = (message.headers or {}).get("x-delivery-count", 0)
        return isinstance(count, int) and count + 1 >= self.settings.delivery_limit

    async def _reply(self, message: Delivery, reply: Reply) -> None:
        if message.reply_to and message.correlation_id:
            await self.publisher.reply(reply, message.reply_to, message.correlation_id)

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
