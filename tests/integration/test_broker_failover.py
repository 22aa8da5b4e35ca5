"""The AMQP layer on a three-node cluster whose first node dies (SIGKILL): a client connected
to it fails over and publishes to the quorum queue that node led; a consumer connected
elsewhere gets back the non-durable queue that lived there; a new client whose first URL is
the dead node connects to the next one. And a node that hangs instead of dying is given up
after a few heartbeats."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.amqp.broker import Broker
from shared.amqp.delivery import Delivery
from shared.amqp.kept_consumer import QueueShape
from shared.errors import Unavailable
from shared.settings import Settings
from tests.support.broker import running_cluster, running_local_node
from tests.support.stack import poll
from tools.rabbit_cluster import LocalCluster

FAILOVER_WITHIN_S = 15.0


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(3) as running:
        yield running


@pytest.fixture
async def clients(cluster: LocalCluster) -> AsyncIterator[list[Broker]]:
    made: list[Broker] = []
    yield made
    for broker in made:
        await broker.close()


async def until_published(broker: Broker, queue: str, body: bytes) -> int:
    """Publish ``body`` to ``queue`` (confirmed, and routed) until that works; the failed
    attempts (refused, unroutable, or no broker) before it."""
    deadline = time.monotonic() + FAILOVER_WITHIN_S
    failed = 0
    while True:
        try:
            if await broker.publish("", queue, body, mandatory=True):
                return failed
        except Unavailable:  # a refusal (Overloaded) included
            pass
        failed += 1
        assert time.monotonic() < deadline, f"nothing published to {queue} after {failed} tries"
        await asyncio.sleep(0.05)  # the next try


async def test_clients_fail_over_to_the_surviving_nodes(
    cluster: LocalCluster, clients: list[Broker]
) -> None:
    first, second, third = cluster.urls
    namespace = f"f{uuid.uuid4().hex[:8]}"

    async def client(name: str, *urls: str) -> Broker:
        broker = Broker(Settings(amqp_urls=",".join(urls), namespace=namespace), name)
        clients.append(broker)
        await broker.connect(retry_for_s=FAILOVER_WITHIN_S)
        return broker

    on_first = await client("on-first", first, second, third)
    on_second = await client("on-second", second, third, first)
    work, lane = f"{namespace}.work", f"{namespace}.lane"
    await on_first.declare_queue(work, arguments={"x-queue-type": "quorum"})
    await on_first.declare_queue(lane, durable=False)  # lives on the first node alone
    assert await asyncio.to_thread(cluster.leader_of, work) is cluster.nodes[0]
    got: list[bytes] = []

    async def on_delivery(delivery: Delivery) -> None:
        got.append(delivery.body)

    await on_second.consume(lane, on_delivery, no_ack=True, recreate=QueueShape(durable=False))
    assert await until_published(on_first, lane, b"before") == 0
    await poll(lambda: got == [b"before"], 5, "the lane's consumer")

    await asyncio.to_thread(cluster.nodes[0].kill)
    # the client of the dead node publishes again, through another node, to the queue the
    # dead node led (once the survivors elected a new leader)
    await until_published(on_first, work, b"after")
    assert on_first.connected
    # the lane died with its node; its consumer declared it again on a surviving node
    await until_published(on_first, lane, b"after")
    await poll(lambda: got == [b"before", b"after"], FAILOVER_WITHIN_S, "the lane again")
    # a process starting now skips the dead first URL
    late = await client("late", first, second, third)
    assert late.connected and await until_published(late, work, b"late") == 0


async def test_a_node_that_hangs_is_given_up_after_a_few_heartbeats(clients: list[Broker]) -> None:
    """A hung node (SIGSTOP: its sockets stay open, nothing answers on them) resets no
    connection; the AMQP heartbeat notices it (IM_AMQP_HEARTBEAT_S, applied to every URL),
    and the client connects to the next URL while the first node still hangs. With aiormq's
    own default (60 s) this would take three minutes."""
    with running_local_node() as hung, running_local_node() as spare:
        namespace = f"h{uuid.uuid4().hex[:8]}"
        settings = Settings(
            amqp_urls=f"{hung.url},{spare.url}", amqp_heartbeat_s=1, namespace=namespace
        )
        broker = Broker(settings, "hung-node")
        clients.append(broker)
        await broker.connect(retry_for_s=FAILOVER_WITHIN_S)
        assert broker.node == f"127.0.0.1:{hung.port}"
        hung.pause()
        try:
            # (the moment between the two connections may be too short to observe)
            await poll(
                lambda: broker.connected and broker.node == f"127.0.0.1:{spare.port}",
                FAILOVER_WITHIN_S,
                "a connection to the next node",
            )
            lane = f"{namespace}.lane"
            await broker.declare_queue(lane, durable=False)
            assert await until_published(broker, lane, b"on the spare node") == 0
        finally:
            hung.resume()
