"""One robust AMQP connection per process: publishing with confirms, consuming, and knowing
whether the broker is there right now (so callers can fail fast with ``unavailable``).

The connection goes to the first broker URL that answers and, when its node goes, to the
next (:class:`FailoverConnection`); after every reconnection the consumers start again and
the reconnect hooks restore what the broker lost. A consumer registered with a
:class:`QueueShape` (of a non-durable queue, which dies with its node even while this process
stays connected to another) is a :class:`KeptConsumer`: it declares its queue again and
consumes it again whenever the broker loses it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq import spec

from shared.amqp.consumer import Consumer, OnDelivery
from shared.amqp.failover import FailoverConnection
from shared.amqp.hooks import ReconnectHook, ReconnectHooks
from shared.amqp.kept_consumer import KeptConsumer, QueueShape
from shared.amqp.topology import Topology
from shared.errors import Overloaded, Unavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0
BIND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0  # one attempt on one node (a dead machine does not refuse, it is silent)
RECONNECT_INTERVAL_S = 0.5  # between two attempts, each to the next node
# A refused publish replaces the confirming channel, at most once per this (see _on_refused)
REPLACE_AFTER_REFUSAL_S = 0.5


class Broker:
    """Owns the connection, a confirming publish channel and a consume channel."""

    def __init__(self, settings: Settings, client_name: str) -> None:
        self.settings = settings
        self.topology = Topology(settings.namespace)
        self._client_name = client_name
        self._connection: FailoverConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._consume_channel: AbstractRobustChannel | None = None
        self._connected = asyncio.Event()
        self._connected_at = 0.0  # monotonic: when it last came to count as connected
        self._hooks = ReconnectHooks(link_up=self._link_up, connected=self._connected.is_set)
        self._consumers: dict[str, Consumer] = {}
        self._kept: dict[str, KeptConsumer] = {}  # consumers of queues that may vanish
        self._replaced_at = float("-inf")  # when a refusal last replaced the publish channel
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self, retry_for_s: float = 60.0) -> None:
        """Connect (to the first broker URL that answers, retrying while none does) and
        declare the exchanges."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for_s
        urls = self.settings.broker_urls()
        delay = 0.2
        for attempt in itertools.count():
            connection = FailoverConnection(
                urls,
                first=attempt,
                client_properties={"connection_name": self._client_name},
                reconnect_interval=RECONNECT_INTERVAL_S,
            )
            try:
                await connection.connect(timeout=CONNECT_TIMEOUT_S)
                self._connection = connection
                break
            except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
                await connection.close()
                if loop.time() > deadline:
                    raise Unavailable(f"broker unreachable: {exc}") from exc
                log.warning("broker not reachable at %s yet (%s); retrying", connection, exc)
                if (attempt + 1) % len(urls) == 0:  # every node tried: wait a little
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        assert self._connection is not None
        self._connection.close_callbacks.add(self._on_connection_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnected)
        self._publish_channel = await self._open_channel(publisher_confirms=True)
        self._consume_channel = await self._open_channel(publisher_confirms=False)
        await self._consume_channel.set_qos(prefetch_count=self.settings.prefetch)
        # the channel reopens after a reconnect, or after a channel error: consume again
        self._consume_channel.reopen_callbacks.add(self._restart_consumers)
        await self._declare_exchanges()
        self._set_connected()
        log.info("connected to the broker at %s", self._connection)

    async def _open_channel(self, publisher_confirms: bool) -> AbstractRobustChannel:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=publisher_confirms)
        assert isinstance(channel, aio_pika.RobustChannel)
        return channel

    async def _declare_exchanges(self) -> None:
        assert self._publish_channel is not None
        for name, kind in self.topology.exchanges():
            await self._publish_channel.declare_exchange(name, kind, durable=True)

    async def close(self) -> None:
        self._closed = True
        self._connected.clear()
        self._hooks.cancel()
        for kept in self._kept.values():
            await kept.close()
        if self._connection is not None:
            await self._connection.close()

    def _on_connection_lost(self, *_: Any) -> None:
        if self._connected.is_set():
            log.warning("broker connection lost")
        self._connected.clear()

    async def _on_reconnected(self, *_: Any) -> None:
        log.info("broker connection restored (%s)", self._connection)
        await self._hooks.run_before()
        self._set_connected()
        self._hooks.start_after()

    async def _restart_consumers(self, *_: Any) -> None:
        """The consume channel was opened again (aio-pika declared its queues again): start
        its consumers again."""
        for consumer in self._consumers.values():
            try:
                await self._start_consumer(consumer)
            except Exception:
                log.exception("could not consume %s again", consumer.queue)

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Run ``hook`` after every reconnection, before the broker counts as connected
        (restore state the broker lost; publishing is not possible yet). Run again while it
        meets :class:`Unavailable` and the connection lasts (see :mod:`shared.amqp.hooks`)."""
        self._hooks.before.append(hook)

    def after_reconnect(self, hook: ReconnectHook) -> None:
        """Run ``hook`` after every reconnection, once publishing works again (in a task; run
        again likewise)."""
        self._hooks.after.append(hook)

    def _set_connected(self) -> None:
        self._connected_at = time.monotonic()
        self._connected.set()

    def connected_for(self) -> float:
        """Seconds since the broker came to count as connected (again); 0 while it is not.
        What a process can have heard from others covers no longer than this."""
        if not self._connected.is_set():
            return 0.0
        return time.monotonic() - self._connected_at

    def _link_up(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def node(self) -> str | None:
        """``host:port`` of the broker node this process talks to (or tries to) now."""
        if self._connection is None:
            return None
        return f"{self._connection.url.host}:{self._connection.url.port}"

    async def until_connected(self, timeout_s: float) -> bool:
        """Whether the broker is connected (again) within ``timeout_s``."""
        if self._closed:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def _until_restored(self) -> None:
        """Not connected: :class:`Unavailable` at once while the broker is away. But once the
        connection is back and only the reconnect hooks are still restoring what the broker
        lost, wait for them: aio-pika restores the consumers first, so a message may already
        be in hand, and failing its publish would run it again for nothing."""
        connection = self._connection
        if connection is None or not connection.connected.is_set():
            raise Unavailable("message broker unavailable")
        if not await self.until_connected(PUBLISH_TIMEOUT_S):
            raise Unavailable("message broker unavailable (still restoring)")

    # -- consuming -------------------------------------------------------------------------

    async def consume(
        self,
        queue: str,
        on_delivery: OnDelivery,
        *,
        no_ack: bool = False,
        arguments: dict[str, Any] | None = None,
        recreate: QueueShape | None = None,
    ) -> str:
        """Deliver ``queue``'s messages to ``on_delivery`` (each in a task of its own, as
        aiormq does), on the consume channel and its prefetch, again after every reconnect.
        ``arguments`` go with the subscription (``x-priority``). With ``recreate``, on a
        channel of its own, declaring the queue like that again whenever the broker loses it
        (a non-durable queue whose node died). Returns the consumer tag for :meth:`cancel`."""
        tag = f"{self._client_name}-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(tag, queue, on_delivery, no_ack, arguments)
        if recreate is not None:
            assert self._connection is not None
            kept = KeptConsumer(
                self._connection, consumer, recreate, prefetch=self.settings.prefetch
            )
            self._kept[tag] = kept
            await kept.start(BIND_TIMEOUT_S)
            return tag
        self._consumers[tag] = consumer
        await self._start_consumer(consumer)
        return tag

    async def _start_consumer(self, consumer: Consumer) -> None:
        assert self._consume_channel is not None
        await consumer.start(await self._consume_channel.get_underlay_channel())

    async def cancel(self, tag: str) -> None:
        """Stop a consumer of :meth:`consume` (messages in hand are still settled)."""
        if (kept := self._kept.get(tag)) is not None:
            await kept.stop()
            return
        self._consumers.pop(tag, None)
        assert self._consume_channel is not None
        try:
            channel = await self._consume_channel.get_underlay_channel()
            await channel.basic_cancel(tag)
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
            pass  # the channel is gone, and the consumer with it

    # -- declaring -------------------------------------------------------------------------

    async def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> AbstractQueue:
        assert self._consume_channel is not None
        return await self._consume_channel.declare_queue(
            name, durable=durable, exclusive=exclusive, arguments=arguments
        )

    async def bind_many(self, queue: str, exchange: str, routing_keys: list[str]) -> None:
        """Bind ``queue`` to ``exchange`` under every key, as one batch: all but the last
        without waiting for the broker's reply (AMQP ``nowait``), the last with it. A channel's
        methods are applied in order, so that reply means every bind is in place."""
        if not routing_keys:
            return
        async with self._binding() as channel:
            for key in routing_keys[:-1]:
                await channel.queue_bind(queue, exchange, key, nowait=True)
            await channel.queue_bind(queue, exchange, routing_keys[-1])

    async def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        async with self._binding() as channel:
            await channel.queue_unbind(queue, exchange, routing_key)

    @asynccontextmanager
    async def _binding(self) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        """The consume channel, for (un)binding within ``BIND_TIMEOUT_S``; a failure or a
        timeout is :class:`Unavailable`."""
        channel = await self._underlay(self._consume_channel)
        try:
            async with asyncio.timeout(BIND_TIMEOUT_S):
                yield channel
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            raise Unavailable("message broker unavailable") from exc

    async def _underlay(self, channel: AbstractRobustChannel | None) -> aiormq.abc.AbstractChannel:
        if channel is None:
            raise Unavailable("message broker unavailable")
        try:
            return await channel.get_underlay_channel()
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise Unavailable("message broker unavailable") from exc

    async def hold_first_free(self, names: list[str]) -> int | None:
        """Declare the first of ``names`` that no other connection holds, as an exclusive queue
        of this connection, and return its position (None: all are held). The broker frees it
        when the connection closes; it is not taken again after a reconnect."""
        assert self._connection is not None and self._connection.transport is not None
        connection = self._connection.transport.connection
        for position, name in enumerate(names):
            channel = await connection.channel()
            try:
                await channel.queue_declare(name, exclusive=True)
            except aiormq.exceptions.ChannelLockedResource:
                continue  # held by another connection (the broker closed this channel)
            await channel.close()
            return position
        return None

    async def declare_delay_queue(self, service: str, delay_ms: int, generation: int) -> str:
        """The durable timer queue of one duration and generation; expired messages go back
        to ``service``."""
        assert self._publish_channel is not None
        name = self.topology.delay_queue(service, delay_ms, generation)
        await self._publish_channel.declare_queue(
            name, durable=True, arguments=self.topology.delay_queue_arguments(service, delay_ms)
        )
        return name

    # -- publishing ------------------------------------------------------------------------

    async def _on_refused(self) -> None:
        """A publish was nacked. A bounded queue that is full does that, and so does
        RabbitMQ 3.10 to every later publish of a channel whose first publish to a quorum
        queue came while that queue was electing a leader (right after a failover): nacked
        for as long as the channel lives, while a new channel publishes. So a refusal
        replaces the confirming channel, at most once per ``REPLACE_AFTER_REFUSAL_S``."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._replaced_at < REPLACE_AFTER_REFUSAL_S or self._connection is None:
            return
        self._replaced_at = loop.time()
        old = self._publish_channel
        try:
            self._publish_channel = await self._open_channel(publisher_confirms=True)
            if old is not None:
                await old.close()
            await self._declare_exchanges()  # restored with this channel after a reconnect
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            log.warning("could not replace the publishing channel (%r)", exc)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        persistent: bool = True,
        confirm: bool = True,
        mandatory: bool = False,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        message_type: str | None = None,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> bool:
        """Publish; with ``confirm`` (the default) wait for the broker's confirm. Returns False
        when a ``mandatory`` message could not be routed to any queue. Raises
        :class:`Overloaded` when a bounded queue refused it, and :class:`Unavailable` at once
        while the broker is away, and when no confirm comes in time.

        ``confirm=False`` is for transient traffic (typing, call signals): written to the
        socket and forgotten, so a broker failure at that moment may lose it.

        This talks to aiormq directly: aio-pika's ``Message`` and ``Exchange.publish`` cost
        about as much CPU again as the publish itself, on the hottest path of every process."""
        if not self._connected.is_set():
            await self._until_restored()
        properties = spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=2 if persistent else 1,
            reply_to=reply_to,
            correlation_id=correlation_id,
            message_type=message_type,
            headers=headers,
            message_id=message_id,
            expiration=str(expiration_ms) if expiration_ms is not None else None,
        )
        channel = self._publish_channel if confirm else self._consume_channel
        assert channel is not None
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                underlay = await channel.get_underlay_channel()
                # wait=False: not awaiting the socket write as well (the confirm covers it)
                result = await underlay.basic_publish(  # type: ignore[call-arg]
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                    wait=False,
                )
        except aiormq.exceptions.DeliveryError as exc:
            await self._on_refused()
            raise Overloaded(f"the broker refused the message: {exc!r}") from exc
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise Unavailable(f"message broker unavailable: {exc!r}") from exc
        return not isinstance(result, aiormq.abc.DeliveredMessage)
