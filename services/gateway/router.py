"""The gateway's side of the broker: its own queue, per-user bindings, commands out,
replies and pushes in.

Per-user bindings are reference-counted through the :class:`Registry`: a user's key is bound
while at least one of their connections is here, and re-bound after a broker reconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractQueue

from services.gateway import metrics
from services.gateway.admission import Admission, Lane, Limits
from services.gateway.announcer import Announcer
from services.gateway.bindings import Bindings
from services.gateway.commands import CommandSender, Outgoing
from services.gateway.connections import Connection, Registry, SlowConsumer
from services.gateway.repeats import RecentFrames
from services.gateway.snapshot import MentorSnapshot
from services.gateway.wire import OutgoingFrame
from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.topology import BROADCAST_ALL, reply_key
from shared.auth import Identity, Role
from shared.errors import ErrorCode, Overloaded, Unavailable
from shared.logs import Tally
from shared.partitions import ordering_key, partition_of
from shared.protocol.domain import (
    CONNECTIONS_CHANGED,
    GATEWAY_HEARTBEAT,
    ConnectionFact,
    ConnectionsChanged,
    GatewayHeartbeat,
)
from shared.protocol.envelope import Reply, ack_frame, dumps, dumps_bytes, error_frame, loads
from shared.protocol.registry import EventSpec

log = logging.getLogger(__name__)

SlowConsumerHandler = Callable[[Connection], None]


# A service must *start* a command this long before the gateway gives up on it, so that a
# command is never executed after its sender was told ``unavailable`` (PROTOCOL §2).
DEADLINE_MARGIN_S = 1.0
QUEUE_FULL_RETRY_MS = 1_000
SNAPSHOT_RETRY_S = 1.0


@dataclass
class Pending:
    """A command waiting for its service's reply."""

    lane: Lane
    event: str
    started: float
    connection_id: str | None = None
    ref: str | None = None
    future: asyncio.Future[Reply] | None = None
    deadline: float = field(default=0.0)
    internal: bool = False  # the gateway's own (snapshot load): neither shed nor counted

    @property
    def service(self) -> str:
        return self.lane[0]


class Router:
    def __init__(
        self, broker: Broker, registry: Registry, on_slow_consumer: SlowConsumerHandler
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.settings = broker.settings
        self.gateway_id = uuid.uuid4().hex[:12]
        # A command's id (its reply's correlation id, chat's idempotency key) is unique over
        # every gateway ever run: 128 random bits, then a counter (uuid4 per command cost ~3 %
        # of the gateway's CPU under load).
        self._id_prefix = uuid.uuid4().hex
        self._ids = itertools.count(1)
        self.queue_name = broker.topology.gateway_queue(self.gateway_id)
        self._on_slow_consumer = on_slow_consumer
        self._queue: AbstractQueue | None = None
        self._pending: dict[str, Pending] = {}
        limits = Limits(
            self.settings.shed_after_ms / 1000, self.settings.transient_shed_after_ms / 1000
        )
        self.admission = Admission(limits, Tally(log, "refused %d commands: a service is behind"))
        self._timeouts = Tally(log, "%d commands timed out (answered unavailable)")
        batch_s = self.settings.connection_batch_ms / 1000
        self.announcer = Announcer(self._publish_changes, batch_s)
        self.bindings = Bindings(broker, registry, self.queue_name, batch_s)
        self.commands = CommandSender(broker, self.queue_name, self.settings.publishes_in_flight)
        self.snapshot = MentorSnapshot()
        self.repeats = RecentFrames(self.settings.repeat_window_s, self.settings.repeat_memory)
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
        await self.broker.consume(self._queue.name, self._on_message, no_ack=True)
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
                reply = await self.call(reader, "presence", "get_mentors", {}, internal=True)
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

    # -- commands out ----------------------------------------------------------------------

    def _command(
        self, identity: Identity, event: str, data: dict[str, Any], connection_id: str
    ) -> dict[str, Any]:
        # The shape of :class:`Command`, built as a dict: this runs for every client frame.
        return {
            "event": event,
            "data": data,
            "user": identity.as_dict(),
            "origin": {
                "gateway_id": self.gateway_id,
                "connection_id": connection_id,
                "reply_to": self.queue_name,
            },
        }

    def submit_command(
        self,
        connection: Connection,
        spec: EventSpec,
        data: dict[str, Any],
        ref: str | None,
    ) -> asyncio.Future[None]:
        """Queue a client command for its service without waiting for the broker; its reply
        (or the broker's refusal, as an ``error`` frame) reaches the connection later. The
        future is done once the broker took or refused it. Raises :class:`Overloaded` at
        once while the service is behind (admission)."""
        lane = (spec.service, spec.transient)
        command = self._command(connection.identity, spec.name, data, connection.id)
        pending = Pending(lane, spec.name, 0.0, connection.id, ref)
        correlation_id = self._next_id()
        partition = self._partition(lane, connection.identity.user_id, data)
        outgoing, published = self._submit(lane, command, pending, correlation_id, partition)
        published.add_done_callback(lambda _: self._after_publish(lane, correlation_id, outgoing))
        return published

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def _after_publish(self, lane: Lane, correlation_id: str, outgoing: Outgoing) -> None:
        if outgoing.refused is None:
            return
        pending = self._forget_pending(correlation_id)
        if pending is not None:
            refusal = self._refusal(lane, outgoing.refused)
            reply = Reply(
                ok=False,
                code=str(refusal.code),
                message=refusal.message,
                retry_after_ms=refusal.retry_after_ms,
            )
            self._settle(pending, reply)

    async def call(
        self,
        identity: Identity,
        service: str,
        event: str,
        data: dict[str, Any],
        internal: bool = False,
    ) -> Reply:
        """Request/reply for HTTP routes (and, ``internal``, the gateway's own requests): the
        service's reply, or Unavailable on timeout."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        correlation_id = self._next_id()
        command = self._command(identity, event, data, f"http-{correlation_id}")
        lane = (service, False)
        pending = Pending(lane, event, 0.0, future=future, internal=internal)
        partition = self._partition(lane, identity.user_id, data)
        try:
            outgoing, published = self._submit(lane, command, pending, correlation_id, partition)
            await published
            if outgoing.refused is not None:
                raise self._refusal(lane, outgoing.refused)
            return await future
        finally:
            self._forget_pending(correlation_id)

    def _partition(self, lane: Lane, user_id: str, data: dict[str, Any]) -> int | None:
        """The partition of a durable command for a partitioned service (chat), else None."""
        service, transient = lane
        partitions = self.settings.partitions(service)
        if transient or not partitions:
            return None
        return partition_of(ordering_key(user_id, data), partitions)

    def _submit(
        self,
        lane: Lane,
        command: dict[str, Any],
        pending: Pending,
        correlation_id: str,
        partition: int | None,
    ) -> tuple[Outgoing, asyncio.Future[None]]:
        if not pending.internal:
            self.admission.admit(lane)
        now = time.monotonic()
        timeout_s = self.settings.request_timeout_s
        pending.started, pending.deadline = now, now + timeout_s
        self._pending[correlation_id] = pending
        if not pending.internal:
            self.admission.started(lane, correlation_id, now)
        start_by_ms = max(1, round((timeout_s - min(DEADLINE_MARGIN_S, timeout_s / 4)) * 1000))
        outgoing = Outgoing(command, correlation_id, h.epoch_ms() + start_by_ms)
        return outgoing, self.commands.submit(lane, outgoing, partition)

    @staticmethod
    def _refusal(lane: Lane, exc: Unavailable) -> Unavailable:
        """What the sender of a command the broker did not take is told."""
        if not isinstance(exc, Overloaded):
            return exc
        service = lane[0]  # its queue is full
        metrics.OVERLOADED.labels(service).inc()
        return Overloaded(
            f"the {service} service is full; try again shortly", retry_after_ms=QUEUE_FULL_RETRY_MS
        )

    def _forget_pending(self, correlation_id: str) -> Pending | None:
        pending = self._pending.pop(correlation_id, None)
        if pending is not None:
            self.admission.finished(pending.lane, correlation_id)
        return pending

    async def expire_loop(self) -> None:
        """Answer ``unavailable`` to commands whose service did not reply in time."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for correlation_id, pending in list(self._pending.items()):
                if pending.deadline <= now:
                    self._forget_pending(correlation_id)
                    metrics.TIMEOUTS.labels(pending.service).inc()
                    self._timeouts.add()
                    reply = Reply(
                        ok=False,
                        code=ErrorCode.UNAVAILABLE,
                        message=f"{pending.service} service did not answer in time",
                    )
                    self._settle(pending, reply)

    # -- deliveries in ---------------------------------------------------------------------

    async def _on_message(self, message: Delivery) -> None:
        if message.type == h.REPLY:
            pending = self._forget_pending(message.correlation_id or "")
            if pending is not None:
                self._settle(pending, Reply.model_validate_json(message.body))
            return
        if message.type == h.BUNDLE:
            self._deliver_bundle(loads(message.body))
            return
        text = message.body.decode()
        headers = message.headers or {}
        spread_user, spread = headers.get(h.SPREAD_USER), headers.get(h.SPREAD_GATEWAYS)
        if isinstance(spread_user, str) and isinstance(spread, int):
            self.registry.spread_over(spread_user, spread)
            return
        target = headers.get(h.CONNECTION)
        if isinstance(target, str):
            connection = self.registry.get(target)
            close_code = headers.get(h.CLOSE_CODE)
            if connection is None:
                return
            if isinstance(close_code, int):  # a service's verdict, e.g. the cap over gateways
                connection.close_after_queued(close_code, text)
            elif self._first_time(text, h.REPEAT in headers):
                self._deliver(connection, text)
            return
        if not self._first_time(text, h.REPEAT in headers):
            self._settle_riding_reply(message, headers)
            return
        excluded = headers.get(h.EXCLUDE)
        followup = _followup(headers)
        key = message.routing_key or ""
        if key == BROADCAST_ALL:
            self.snapshot.observe_frame(text)
        frame = OutgoingFrame(text)  # framed once, for however many of them are here
        for connection in self._recipients(key, headers.get("CC")):
            if connection.id != excluded:
                self._deliver(connection, frame)
                if followup is not None:
                    connection.replace_followup(*followup)
        self._settle_riding_reply(message, headers)

    def _settle_riding_reply(self, message: Delivery, headers: dict[str, Any]) -> None:
        """Settle the reply a push carries (after the push, as if sent after it)."""
        reply = headers.get(h.REPLY_BODY)
        if isinstance(reply, str | bytes):
            pending = self._forget_pending(message.correlation_id or "")
            if pending is not None:
                self._settle(pending, Reply.model_validate_json(reply))

    def _first_time(self, text: str, repeat: bool) -> bool:
        """Whether to deliver a push frame: not when it is a service's repeat of one that
        went out here already (see :mod:`services.gateway.repeats`)."""
        if repeat and self.repeats.delivered(text):
            metrics.REPEATS_DROPPED.inc()
            return False
        self.repeats.note(text)
        return True

    def _deliver_bundle(self, entries: list[dict[str, Any]]) -> None:
        """The pushes and replies of several commands (see ``Publisher.bundle``), in order:
        each push to its users' connections here, each reply after its command's pushes (the
        replies of commands sent by other gateways are theirs: none is pending here)."""
        for entry in entries:
            text = entry.get("frame")
            if text is not None and self._first_time(text, "repeat" in entry):
                frame = OutgoingFrame(text)
                excluded, followup = entry.get("exclude"), entry.get("followup")
                for user_id in dict.fromkeys(entry["to"]):  # each user once
                    for connection in self.registry.of_user(user_id):
                        if connection.id != excluded:
                            self._deliver(connection, frame)
                            if followup is not None:
                                connection.replace_followup(*followup)
            reply = entry.get("reply")
            if reply is not None:
                pending = self._forget_pending(reply[0])
                if pending is not None:
                    self._settle(pending, Reply.model_validate(reply[1]))

    def _recipients(self, key: str, cc: object) -> Iterable[Connection]:
        """This gateway's connections among a push's addressees (its key and its ``CC``)."""
        if key == BROADCAST_ALL:
            return list(self.registry)
        keys = [key, *cc] if isinstance(cc, list) else [key]
        users = {str(k).removeprefix("user.") for k in keys if str(k).startswith("user.")}
        if len(users) == 1:
            return self.registry.of_user(users.pop())
        return {c for user_id in users for c in self.registry.of_user(user_id)}

    def _deliver(self, connection: Connection, frame: str | OutgoingFrame) -> None:
        try:
            connection.send(frame)
        except SlowConsumer:
            self._on_slow_consumer(connection)

    def _settle(self, pending: Pending, reply: Reply) -> None:
        waited = time.monotonic() - pending.started
        metrics.labelled(metrics.REQUEST_SECONDS, pending.service).observe(waited)
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
        metrics.labelled(metrics.ERRORS, code).inc()
        frame = error_frame(
            pending.ref, code, reply.message or code, pending.event, reply.retry_after_ms
        )
        self._deliver(connection, dumps(frame))


def _followup(headers: dict[str, Any]) -> tuple[str, float, str | None] | None:
    """``(key, after_s, frame)`` of a push that replaces what is pending under ``key``."""
    key = headers.get(h.FOLLOWUP_KEY)
    if not isinstance(key, str):
        return None
    after_ms, frame = headers.get(h.FOLLOWUP_AFTER_MS), headers.get(h.FOLLOWUP_FRAME)
    if isinstance(after_ms, int) and isinstance(frame, str | bytes):
        return key, after_ms / 1000, frame if isinstance(frame, str) else frame.decode()
    return key, 0.0, None
