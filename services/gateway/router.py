"""The gateway's side of the broker: its own queue, per-user bindings, commands out,
replies and pushes in.

Per-user bindings are reference-counted through the :class:`Registry`: a user's key is bound
while at least one of their connections is here, and re-bound after a broker reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from services.gateway import metrics
from services.gateway.connections import Connection, Registry, SlowConsumer
from shared.amqp.broker import Broker
from shared.amqp.topology import BROADCAST_ALL, user_key
from shared.auth import Identity
from shared.errors import ErrorCode, Unavailable
from shared.protocol.domain import (
    CONNECTION_CLOSED,
    CONNECTION_OPENED,
    GATEWAY_HEARTBEAT,
    ConnectionFact,
    GatewayHeartbeat,
)
from shared.protocol.envelope import Reply, ack_frame, dumps, dumps_bytes, error_frame
from shared.runtime.service import HEADER_CONNECTION, HEADER_EXCLUDE, REPLY

log = logging.getLogger(__name__)

SlowConsumerHandler = Callable[[Connection], None]


@dataclass
class Pending:
    """A command waiting for its service's reply."""

    service: str
    event: str
    started: float
    connection_id: str | None = None
    ref: str | None = None
    future: asyncio.Future[Reply] | None = None
    deadline: float = field(default=0.0)


class Router:
    def __init__(
        self, broker: Broker, registry: Registry, on_slow_consumer: SlowConsumerHandler
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.settings = broker.settings
        self.gateway_id = uuid.uuid4().hex[:12]
        self.queue_name = broker.topology.gateway_queue(self.gateway_id)
        self._on_slow_consumer = on_slow_consumer
        self._queue: AbstractQueue | None = None
        self._pending: dict[str, Pending] = {}
        self._bound: set[str] = set()
        self._binding_locks: dict[str, asyncio.Lock] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        t = self.broker.topology
        self._queue = await self.broker.declare_queue(
            self.queue_name, durable=False, exclusive=True
        )
        await self._queue.bind(t.push, BROADCAST_ALL)
        await self._queue.consume(self._on_message, no_ack=True)
        self.broker.on_reconnect(self._rebind)
        self.broker.after_reconnect(self._announce_all)
        log.info("gateway %s consuming %s", self.gateway_id, self.queue_name)

    async def _rebind(self) -> None:
        """After a broker reconnect, before traffic resumes: bind every user again."""
        self._bound.clear()
        for user_id in self.registry.users():
            await self.sync_binding(user_id)

    async def _announce_all(self) -> None:
        """After a broker reconnect: tell presence again about every connection held here."""
        for connection in self.registry:
            await self._publish_fact(CONNECTION_OPENED, self._fact(connection, resumed=True))

    # -- bindings --------------------------------------------------------------------------

    async def sync_binding(self, user_id: str) -> None:
        """Make the binding of ``user_id`` match whether they have a connection here."""
        assert self._queue is not None
        lock = self._binding_locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            wanted = self.registry.has_user(user_id)
            if wanted and user_id not in self._bound:
                # robust=False: we restore user bindings ourselves (see _rebind); aio-pika's
                # own bookkeeping of them would make every unbind O(bindings).
                await self._queue.bind(  # type: ignore[call-arg]
                    self.broker.topology.push, user_key(user_id), robust=False
                )
                self._bound.add(user_id)
            elif not wanted and user_id in self._bound:
                await self._queue.unbind(self.broker.topology.push, user_key(user_id))
                self._bound.discard(user_id)
        if not lock.locked() and not self.registry.has_user(user_id):
            self._binding_locks.pop(user_id, None)

    # -- connection facts ------------------------------------------------------------------

    def _fact(self, connection: Connection, resumed: bool = False) -> dict[str, Any]:
        fact = ConnectionFact(
            gateway_id=self.gateway_id,
            connection_id=connection.id,
            user_id=connection.user_id,
            role=connection.identity.role.value,
            name=connection.identity.name,
            reply_to=self.queue_name,
            at=time.time(),
            resumed=resumed,
        )
        return fact.model_dump()

    async def announce_opened(self, connection: Connection) -> None:
        await self._publish_fact(CONNECTION_OPENED, self._fact(connection))

    async def announce_closed(self, connection: Connection) -> None:
        await self._publish_fact(CONNECTION_CLOSED, self._fact(connection))

    async def _publish_fact(self, name: str, data: dict[str, Any], persistent: bool = True) -> None:
        body = dumps_bytes({"event": name, "data": data})
        await self.broker.publish(self.broker.topology.domain, name, body, persistent=persistent)

    async def heartbeat_loop(self) -> None:
        """Tell presence, periodically, that this gateway lives and which connections it holds."""
        while True:
            beat = GatewayHeartbeat(
                gateway_id=self.gateway_id,
                connection_ids=[c.id for c in self.registry],
                at=time.time(),
            )
            try:
                await self._publish_fact(GATEWAY_HEARTBEAT, beat.model_dump(), persistent=False)
            except Unavailable:
                pass
            await asyncio.sleep(self.settings.gateway_heartbeat_s)

    # -- commands out ----------------------------------------------------------------------

    def _command(
        self, identity: Identity, event: str, data: dict[str, Any], connection_id: str
    ) -> bytes:
        # The shape of :class:`Command`, built as a dict: this runs for every client frame.
        command = {
            "event": event,
            "data": data,
            "user": identity.as_dict(),
            "origin": {
                "gateway_id": self.gateway_id,
                "connection_id": connection_id,
                "reply_to": self.queue_name,
            },
        }
        return dumps_bytes(command)

    async def send_command(
        self,
        connection: Connection,
        service: str,
        event: str,
        data: dict[str, Any],
        ref: str | None,
    ) -> None:
        """Publish a client command; its reply reaches the connection later. Raises Unavailable."""
        correlation_id = uuid.uuid4().hex
        now = time.monotonic()
        self._pending[correlation_id] = Pending(
            service, event, now, connection.id, ref, deadline=now + self.settings.request_timeout_s
        )
        try:
            await self.broker.publish(
                self.broker.topology.commands,
                f"{service}.{event}",
                self._command(connection.identity, event, data, connection.id),
                reply_to=self.queue_name,
                correlation_id=correlation_id,
                message_id=correlation_id,
            )
        except Unavailable:
            self._pending.pop(correlation_id, None)
            raise

    async def call(
        self, identity: Identity, service: str, event: str, data: dict[str, Any]
    ) -> Reply:
        """Request/reply for HTTP routes: the service's reply, or Unavailable on timeout."""
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        now = time.monotonic()
        self._pending[correlation_id] = Pending(
            service, event, now, future=future, deadline=now + self.settings.request_timeout_s
        )
        try:
            await self.broker.publish(
                self.broker.topology.commands,
                f"{service}.{event}",
                self._command(identity, event, data, f"http-{correlation_id}"),
                reply_to=self.queue_name,
                correlation_id=correlation_id,
                message_id=correlation_id,
            )
            return await future
        finally:
            self._pending.pop(correlation_id, None)

    async def expire_loop(self) -> None:
        """Answer ``unavailable`` to commands whose service did not reply in time."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for correlation_id, pending in list(self._pending.items()):
                if pending.deadline <= now:
                    del self._pending[correlation_id]
                    reply = Reply(
                        ok=False,
                        code=ErrorCode.UNAVAILABLE,
                        message=f"{pending.service} service did not answer in time",
                    )
                    self._settle(pending, reply)

    # -- deliveries in ---------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if message.type == REPLY:
            pending = self._pending.pop(message.correlation_id or "", None)
            if pending is not None:
                self._settle(pending, Reply.model_validate_json(message.body))
            return
        text = message.body.decode()
        headers = message.headers or {}
        target = headers.get(HEADER_CONNECTION)
        if isinstance(target, str):
            connection = self.registry.get(target)
            if connection is not None:
                self._deliver(connection, text)
            return
        key = message.routing_key or ""
        if key == BROADCAST_ALL:
            recipients: frozenset[Connection] | list[Connection] = list(self.registry)
        else:
            recipients = self.registry.of_user(key.removeprefix("user."))
        excluded = headers.get(HEADER_EXCLUDE)
        for connection in recipients:
            if connection.id != excluded:
                self._deliver(connection, text)

    def _deliver(self, connection: Connection, text: str) -> None:
        try:
            connection.send(text)
        except SlowConsumer:
            self._on_slow_consumer(connection)

    def _settle(self, pending: Pending, reply: Reply) -> None:
        metrics.REQUEST_SECONDS.labels(pending.service).observe(time.monotonic() - pending.started)
        if pending.future is not None:
            if not pending.future.done():
                pending.future.set_result(reply)
            return
        connection = self.registry.get(pending.connection_id or "")
        if connection is None:
            return
        if reply.ok:
            if pending.ref is not None:
                self._deliver(connection, dumps(ack_frame(pending.ref, reply.data)))
            return
        code = reply.code or ErrorCode.INTERNAL
        metrics.ERRORS.labels(code).inc()
        frame = error_frame(pending.ref, code, reply.message or code, pending.event)
        self._deliver(connection, dumps(frame))
