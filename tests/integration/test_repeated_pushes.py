"""A command a service runs again (redelivered) publishes its pushes again; the gateway that
delivered them already drops the repeats, so no client sees a message twice.

The redelivery is made the way the broker makes one: the gateway's very message (copied by a
tap queue bound beside chat's) is published again with one attempt counted."""

from __future__ import annotations

import re

import aio_pika
import httpx

from shared.amqp import headers as h
from tests.support.stack import Gateway, Stack, poll
from tests.support.users import connect_to_chat


def repeats_dropped(gateway: Gateway) -> float:
    metrics = httpx.get(f"{gateway.http}/metrics", timeout=5).text
    found = re.search(r"^im_gateway_repeats_dropped_total ([0-9.e+]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_message_pushed_again_by_a_redelivered_command_reaches_nobody_twice(
    stack: Stack,
) -> None:
    stack.start_service("chat")
    gateway = stack.start_gateway()
    alice = await connect_to_chat(stack, gateway, "alice")
    alice_tablet = await connect_to_chat(stack, gateway, "alice")
    bob = await connect_to_chat(stack, gateway, "bob")

    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel()
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(f"{stack.namespace}.commands", "chat.#")
        await alice.ack("send_message", {"recipient_id": "bob", "text": "once"})
        await bob.event("message_received", text="once")
        await alice_tablet.event("message_received", text="once")
        sent = await tap.get(timeout=5)
        assert sent is not None and sent.routing_key is not None
        assert repeats_dropped(gateway) == 0

        exchange = await channel.get_exchange(f"{stack.namespace}.commands", ensure=False)
        again = aio_pika.Message(
            sent.body,
            headers={**(sent.headers or {}), h.ATTEMPTS: 1},
            type=sent.type,
            reply_to=sent.reply_to,
            correlation_id=sent.correlation_id,
            message_id=sent.message_id,
        )
        await exchange.publish(again, routing_key=sent.routing_key)
        await poll(lambda: repeats_dropped(gateway) == 1, 10, "the repeat dropped")
    finally:
        await connection.close()

    # a new message after the repeat is delivered as ever, and the first one was not repeated
    await alice.ack("send_message", {"recipient_id": "bob", "text": "next"})
    await bob.event("message_received", text="next")
    await alice_tablet.event("message_received", text="next")
    for client in (bob, alice_tablet):
        texts = [f["data"]["text"] for f in client.frames if f["event"] == "message_received"]
        assert texts == ["once", "next"]
    assert repeats_dropped(gateway) == 1
