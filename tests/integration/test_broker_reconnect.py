"""The AMQP layer on a real broker across a lost connection: aio-pika restores the channels and
their consumers before the reconnect hooks have put back what the broker lost, so a message
may be in hand before the broker counts as connected. Its publishes wait for the hooks rather
than fail (a failed publish would have its command run again, which finds nothing changed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.amqp.broker import Broker
from shared.errors import Unavailable
from shared.settings import Settings
from tests.support.broker import Broker as RunningBroker


@pytest.fixture
async def client(broker: RunningBroker) -> AsyncIterator[Broker]:
    connected = Broker(Settings(amqp_url=broker.url, namespace=f"t{uuid.uuid4().hex[:10]}"), "t")
    await connected.connect()
    yield connected
    await connected.close()


async def test_a_publish_while_the_reconnect_hooks_run_waits_for_them(client: Broker) -> None:
    hooks_running, hooks_may_end = asyncio.Event(), asyncio.Event()

    async def restoring() -> None:
        hooks_running.set()
        await hooks_may_end.wait()

    client.on_reconnect(restoring)
    queue = await client.declare_queue(f"{client.topology.namespace}.probe", durable=False)
    transport = client._connection.transport if client._connection else None
    assert transport is not None
    await transport.connection.close(ConnectionResetError("the broker went away"))
    await asyncio.wait_for(hooks_running.wait(), 30)
    assert not client.connected

    publishing = asyncio.create_task(client.publish("", queue.name, b"in hand", mandatory=True))
    for _ in range(20):  # the publish has every chance to run; it waits
        await asyncio.sleep(0)
    assert not publishing.done()
    hooks_may_end.set()
    assert await asyncio.wait_for(publishing, 10) is True, "published, and routed to the queue"
    message = await queue.get(timeout=5)
    assert message.body == b"in hand"


async def test_a_publish_after_close_is_refused_at_once(client: Broker) -> None:
    await client.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable):
        await client.publish("", "anything", b"x")
    assert loop.time() - started < 0.5
