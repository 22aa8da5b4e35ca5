"""Commands out to the services, and the replies they wait for.

A command is admitted (or refused at once while its service is behind, see
:mod:`services.gateway.admission`), given a deadline and handed to the :class:`CommandSender`.
Then one of three things settles it: its service's reply, the broker's refusal, or its
deadline passing (``unavailable``). Settling sends its connection an ``ack`` or an ``error``
frame, or, for an HTTP route's :meth:`Requests.call`, returns the reply.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.gateway import metrics
from services.gateway.admission import Admission, Lane, Limits
from services.gateway.commands import CommandSender, Outgoing
from services.gateway.connections import Connection
from services.gateway.registry import Registry
from services.gateway.wire import OutgoingFrame
from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.auth import Identity
from shared.errors import ErrorCode, Overloaded, Unavailable
from shared.logs import Tally
from shared.partitions import ordering_key, partition_of
from shared.protocol.envelope import Reply, ack_frame, dumps, error_frame
from shared.protocol.registry import EventSpec

log = logging.getLogger(__name__)

Deliver = Callable[[Connection, str | OutgoingFrame], None]

# A service must *start* a command this long before the gateway gives up on it, so that a
# command is never executed after its sender was told ``unavailable`` (PROTOCOL §2).
DEADLINE_MARGIN_S = 1.0
QUEUE_FULL_RETRY_MS = 1_000
EXPIRY_CHECK_S = 0.25


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


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the replies to this gateway's commands go."""

    gateway_id: str
    reply_to: str  # the gateway's queue


class Requests:
    def __init__(
        self, broker: Broker, origin: Origin, registry: Registry, deliver: Deliver
    ) -> None:
        self.settings = settings = broker.settings
        self.origin = origin
        self.registry = registry
        self._deliver = deliver
        self.sender = CommandSender(broker, origin.reply_to, settings.publishes_in_flight)
        # A command's id (its reply's correlation id, chat's idempotency key) is unique over
        # every gateway ever run: 128 random bits, then a counter (uuid4 per command cost ~3 %
        # of the gateway's CPU under load).
        self._id_prefix = uuid.uuid4().hex
        self._ids = itertools.count(1)
        self._pending: dict[str, Pending] = {}
        limits = Limits(settings.shed_after_ms / 1000, settings.transient_shed_after_ms / 1000)
        self.admission = Admission(limits, Tally(log, "refused %d commands: a service is behind"))
        self._timeouts = Tally(log, "%d commands timed out (answered unavailable)")

    def submit(
        self, connection: Connection, spec: EventSpec, data: dict[str, Any], ref: str | None
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
            self._forget(correlation_id)

    def replied(self, correlation_id: str, reply: str | bytes | dict[str, Any]) -> None:
        """A service's reply arrived, as sent (JSON; or decoded, from a bundle). It is read
        only when its command is pending here: a bundle's other replies are other gateways'."""
        pending = self._forget(correlation_id)
        if pending is not None:
            if isinstance(reply, dict):
                self._settle(pending, Reply.model_validate(reply))
            else:
                self._settle(pending, Reply.model_validate_json(reply))

    async def expire_loop(self) -> None:
        """Answer ``unavailable`` to commands whose service did not reply in time."""
        while True:
            await asyncio.sleep(EXPIRY_CHECK_S)
            now = time.monotonic()
            for correlation_id, pending in list(self._pending.items()):
                if pending.deadline <= now:
                    self._forget(correlation_id)
                    metrics.TIMEOUTS.labels(pending.service).inc()
                    self._timeouts.add()
                    reply = Reply(
                        ok=False,
                        code=ErrorCode.UNAVAILABLE,
                        message=f"{pending.service} service did not answer in time",
                    )
                    self._settle(pending, reply)

    def _command(
        self, identity: Identity, event: str, data: dict[str, Any], connection_id: str
    ) -> dict[str, Any]:
        # The shape of :class:`Command`, built as a dict: this runs for every client frame.
        return {
            "event": event,
            "data": data,
            "user": identity.as_dict(),
            "origin": {
                "gateway_id": self.origin.gateway_id,
                "connection_id": connection_id,
                "reply_to": self.origin.reply_to,
            },
        }

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

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
        return outgoing, self.sender.submit(lane, outgoing, partition)

    def _after_publish(self, lane: Lane, correlation_id: str, outgoing: Outgoing) -> None:
        if outgoing.refused is None:
            return
        pending = self._forget(correlation_id)
        if pending is not None:
            refusal = self._refusal(lane, outgoing.refused)
            reply = Reply(
                ok=False,
                code=str(refusal.code),
                message=refusal.message,
                retry_after_ms=refusal.retry_after_ms,
            )
            self._settle(pending, reply)

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

    def _forget(self, correlation_id: str) -> Pending | None:
        pending = self._pending.pop(correlation_id, None)
        if pending is not None:
            self.admission.finished(pending.lane, correlation_id)
        return pending

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
