"""The gateway's side of the broker: its own queue, per-user bindings, the facts it tells
the services (connections opened and closed, heartbeats), and the mentor snapshot. Two parts
do the rest: :class:`Requests` sends the commands and settles their replies, and
:class:`Incoming` hands what the services send to this gateway's connections.

Per-user bindings are reference-counted through the :class:`Registry`: a user's key is bound
while at least one of their connections is here, and re-bound after a broker reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aio_pika.abc import AbstractQueue

from services.gateway.announcer import Announcer
from services.gateway.bindings import Bindings
from services.gateway.connections import Connection, SlowConsumer
from services.gateway.incoming import Incoming
from services.gateway.registry import Registry
from services.gateway.repeats import RecentFrames
from services.gateway.requests import Origin, Requests
from services.gateway.snapshot import MentorSnapshot
from services.gateway.wire import OutgoingFrame
from shared.amqp.broker import Broker
from shared.amqp.topology import BROADCAST_ALL, reply_key
from shared.auth import Identity, Role
from shared.errors import Unavailable
from shared.protocol.domain import (
    CONNECTIONS_CHANGED,
    GATEWAY_HEARTBEAT,
    ConnectionFact,
    ConnectionsChanged,
    GatewayHeartbeat,
)
from shared.protocol.envelope import dumps_bytes

log = logging.getLogger(__name__)

SlowConsumerHandler = Callable[[Connection], None]

SNAPSHOT_RETRY_S = 1.0


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
        batch_s = self.settings.connection_batch_ms / 1000
        self.announcer = Announcer(self._publish_changes, batch_s)
        self.bindings = Bindings(broker, registry, self.queue_name, batch_s)
        origin = Origin(self.gateway_id, self.queue_name)
        self.requests = Requests(broker, origin, registry, self._deliver)
        self.snapshot = MentorSnapshot()
        repeats = RecentFrames(self.settings.repeat_window_s, self.settings.repeat_memory)
        self.incoming = Incoming(registry, self.requests, self.snapshot, repeats, self._deliver)
        self._snapshot_stale = asyncio.Event()
        self._snapshot_stale.set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        t = self.broker.topology
        self._queue = await self.broker.declare_queue(
            self.queue_name, durable=False, exclusive=True
        )
        await self._queue.bind(t.push, BROADCAST_ALL)
        await self._queue.bind(t.push, reply_key(self.queue_name))  # replies riding on pushes
        await self.broker.consume(self._queue.name, self.incoming.on_message, no_ack=True)
        self.broker.on_reconnect(self._rebind)
        self.broker.after_reconnect(self._announce_all)
        log.info("gateway %s consuming %s", self.gateway_id, self.queue_name)

    async def _rebind(self) -> None:
        """After a broker reconnect, before traffic resumes: bind every user again (and
        reload the mentor snapshot: broadcasts may have been missed)."""
        self.snapshot.invalidate()
        self._snapshot_stale.set()
        self.bindings.forget()
        await asyncio.gather(*(self.bindings.sync(u) for u in self.registry.users()))

    async def _announce_all(self) -> None:
        """After a broker reconnect: tell presence again about every connection held here."""
        facts = [self._fact(connection, resumed=True) for connection in self.registry]
        await asyncio.gather(*(self.announcer.opened(fact) for fact in facts))

    # -- bindings --------------------------------------------------------------------------

    async def sync_binding(self, user_id: str) -> None:
        """Make the binding of ``user_id`` match whether they have a connection here
        (batched with the other users whose connections changed; see :class:`Bindings`)."""
        await self.bindings.sync(user_id)

    # -- connection facts ------------------------------------------------------------------

    def _fact(
        self, connection: Connection, resumed: bool = False, snapshot_sent: bool = False
    ) -> ConnectionFact:
        return ConnectionFact(
            gateway_id=self.gateway_id,
            connection_id=connection.id,
            user_id=connection.user_id,
            role=connection.identity.role.value,
            name=connection.identity.name,
            reply_to=self.queue_name,
            at=time.time(),
            resumed=resumed,
            snapshot_sent=snapshot_sent,
        )

    async def announce_opened(self, connection: Connection, snapshot_sent: bool) -> None:
        """Tell the services (batched with other connections); returns once confirmed."""
        await self.announcer.opened(self._fact(connection, snapshot_sent=snapshot_sent))

    async def announce_closed(self, connection: Connection) -> None:
        await self.announcer.closed(self._fact(connection))

    async def _publish_changes(self, batch: ConnectionsChanged) -> None:
        await self._publish_fact(CONNECTIONS_CHANGED, batch.model_dump())

    # -- the mentor snapshot ---------------------------------------------------------------

    def snapshot_frame(self, identity: Identity) -> str | None:
        """The snapshot this gateway can send itself: a student's, once loaded. A mentor's
        own entry may differ from the broadcast one (appearing offline): presence sends it."""
        return self.snapshot.frame() if identity.role is Role.STUDENT else None

    async def snapshot_loop(self) -> None:
        """Load the snapshot from presence at start and after every broker reconnect."""
        reader = Identity(f"gateway-{self.gateway_id}", Role.STUDENT, "gateway")
        while True:
            await self._snapshot_stale.wait()
            self._snapshot_stale.clear()
            try:
                reply = await self.requests.call(
                    reader, "presence", "get_mentors", {}, internal=True
                )
            except Unavailable:
                reply = None
            mentors = reply.data.get("mentors") if reply is not None and reply.ok else None
            if isinstance(mentors, list):
                self.snapshot.load(mentors)
            else:
                log.info("mentor snapshot not loaded yet; presence will send it meanwhile")
                self._snapshot_stale.set()
                await asyncio.sleep(SNAPSHOT_RETRY_S)

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

    def _deliver(self, connection: Connection, frame: str | OutgoingFrame) -> None:
        try:
            connection.send(frame)
        except SlowConsumer:
            self._on_slow_consumer(connection)
