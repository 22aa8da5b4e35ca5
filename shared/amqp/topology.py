"""Names and shapes of every exchange and queue (see docs/architecture.md).

* ``<ns>.commands`` (topic): client commands and fired timers, key ``<service>.<event>``.
* ``<ns>.domain`` (topic): facts between processes, key ``<source>.<fact>``.
* ``<ns>.push`` (topic): pushes to users, key ``user.<id>`` or ``broadcast.all``; and
  ``to.<gateway queue>`` for a push that carries the asking gateway's reply.
* ``<ns>.dead`` (direct): where a service's poison messages end, key ``<service>``.
* ``<ns>.<service>`` (quorum, bounded): a service's durable work queue; replicas compete on it.
  A partitioned service (chat) gets only its facts, timers and retries there.
* ``<ns>.<service>.p<n>`` (quorum, bounded, single active consumer): partition ``n`` of a
  partitioned service's client commands, key ``<service>.p<n>.<event>``; every replica
  consumes every partition, one of them at a time is active, so the order holds.
* ``<ns>.<service>.transient`` (classic, non-persistent, bounded, single active consumer):
  the light path of transient commands (typing, call signals), in order, shed first.
* ``<ns>.<service>.replica.<i>`` (exclusive, empty): held by the replica numbered ``i``.
* ``<ns>.gateway.<id>`` (exclusive): one per gateway process; user bindings come and go.
* ``<ns>.delay.<service>.<ms>.g<generation>`` (quorum, TTL): durable timers of one duration,
  replicated (a timer outlives the node it was published on); a new one every
  ``DELAY_QUEUE_GENERATION_S``, deleted by the broker once its last timer has fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, overload

from aio_pika import ExchangeType

BROADCAST_ALL = "broadcast.all"
# Timers go into the delay queue of their duration and of the current generation (wall clock
# / DELAY_QUEUE_GENERATION_S). A quorum queue's x-expires counts from its creation (RabbitMQ
# 3.10 resets it neither on a declaration nor on a publish), so each generation's queue lives
# for a generation, plus its duration, plus DELAY_QUEUE_SPARE_MS (clock skew between
# replicas): longer than its last timer, and the one-off durations (a help request's remaining
# lifetime) do not pile up.
DELAY_QUEUE_SPARE_MS = 120_000
DELAY_QUEUE_GENERATION_S = 60


def user_key(user_id: str) -> str:
    return f"user.{user_id}"


def reply_key(queue: str) -> str:
    """The push-exchange key of one gateway's own queue (a reply riding on a push)."""
    return f"to.{queue}"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One of the exchanges every process declares. Read on a :class:`Topology`, its name
    there: ``<namespace>.<suffix>``."""

    suffix: str
    kind: ExchangeType

    @overload
    def __get__(self, topology: None, owner: type[Topology]) -> Exchange: ...

    @overload
    def __get__(self, topology: Topology, owner: type[Topology]) -> str: ...

    def __get__(self, topology: Topology | None, owner: type[Topology]) -> Exchange | str:
        return self if topology is None else f"{topology.namespace}.{self.suffix}"


@dataclass(frozen=True, slots=True)
class Topology:
    namespace: str

    commands = Exchange("commands", ExchangeType.TOPIC)
    domain = Exchange("domain", ExchangeType.TOPIC)
    push = Exchange("push", ExchangeType.TOPIC)
    dead_letters = Exchange("dead", ExchangeType.DIRECT)
    EXCHANGES: ClassVar[tuple[Exchange, ...]] = (commands, domain, push, dead_letters)

    def exchanges(self) -> list[tuple[str, ExchangeType]]:
        """The name and type of every exchange, for declaring them."""
        return [(exchange.__get__(self, Topology), exchange.kind) for exchange in self.EXCHANGES]

    def service_queue(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def transient_queue(self, service: str) -> str:
        return f"{self.namespace}.{service}.transient"

    def dead_queue(self, service: str) -> str:
        return f"{self.namespace}.{service}.dead"

    def gateway_queue(self, gateway_id: str) -> str:
        return f"{self.namespace}.gateway.{gateway_id}"

    def delay_queue(self, service: str, delay_ms: int, generation: int) -> str:
        return f"{self.namespace}.delay.{service}.{delay_ms}.g{generation}"

    def partition_queue(self, service: str, partition: int) -> str:
        return f"{self.namespace}.{service}.p{partition}"

    def replica_slot(self, service: str, index: int) -> str:
        """An exclusive queue: whoever declared it is replica ``index`` of ``service``."""
        return f"{self.namespace}.{service}.replica.{index}"

    @staticmethod
    def partition_key(service: str, partition: int, event: str) -> str:
        """The commands-exchange key of a command for one partition (``event`` may be
        ``batch``). Three words, so the service queue's ``<service>.*`` does not match it."""
        return f"{service}.p{partition}.{event}"

    @staticmethod
    def service_binding(service: str, partitioned: bool) -> str:
        """What binds the service queue: ``<service>.<event>`` only, when partitioned."""
        return f"{service}.*" if partitioned else f"{service}.#"

    @staticmethod
    def timer_key(service: str) -> str:
        return f"{service}.timer"

    def service_queue_arguments(
        self, service: str, delivery_limit: int, max_length: int
    ) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": self.dead_letters,
            "x-dead-letter-routing-key": service,
            # Full: the publisher's confirm is a nack, and the client hears unavailable at once.
            "x-max-length": max_length,
            "x-overflow": "reject-publish",
        }

    def partition_queue_arguments(
        self, service: str, delivery_limit: int, max_length: int
    ) -> dict[str, Any]:
        """A service queue's bounds, with one consumer active at a time: its commands are
        started in the order they were queued, whichever replica runs them."""
        return {
            **self.service_queue_arguments(service, delivery_limit, max_length),
            "x-single-active-consumer": True,
        }

    @staticmethod
    def transient_queue_arguments(max_length: int, ttl_ms: int) -> dict[str, Any]:
        return {
            "x-single-active-consumer": True,  # one replica at a time: per-call order holds
            "x-max-length": max_length,  # full: the oldest go first (drop-head)
            "x-message-ttl": ttl_ms,  # never worked on once its sender gave up on it
        }

    def delay_queue_arguments(self, service: str, delay_ms: int) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms,
            "x-expires": DELAY_QUEUE_GENERATION_S * 1000 + delay_ms + DELAY_QUEUE_SPARE_MS,
            "x-dead-letter-exchange": self.commands,
            "x-dead-letter-routing-key": self.timer_key(service),
            # a fired timer leaves the queue only once its service's queue has it
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",  # at-least-once dead-lettering needs it
        }


def delay_generation(epoch_s: float) -> int:
    """The generation of delay queues that timers set at ``epoch_s`` (wall clock) go into."""
    return int(epoch_s // DELAY_QUEUE_GENERATION_S)
