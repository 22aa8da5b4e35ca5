"""Commands batched per service under load, end to end: many senders at once on one gateway,
so commands arrive while the broker confirms earlier ones and go in shared messages. Every
command is still answered once, by its own ref, and every message stored once, in its
sender's order."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import WsClient
from tests.support.stack import NO_RATE_LIMITS, Stack, poll
from tests.support.users import connect_to_chat

SENDERS = 12
EACH = 15


def commands_in_shared_messages(metrics: str) -> float:
    """Chat commands that went in a message with at least one other (from the histogram)."""
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "im_gateway_commands_per_message"
        for sample in family.samples
        if sample.labels.get("service") == "chat"
    }
    total = samples[("im_gateway_commands_per_message_sum", None)]
    alone = samples[("im_gateway_commands_per_message_bucket", "1.0")]
    return total - alone


async def test_concurrent_senders_share_messages_and_lose_nothing(stack: Stack) -> None:
    stack.start_service("chat")
    gateway = stack.start_gateway(NO_RATE_LIMITS)
    senders = [await connect_to_chat(stack, gateway, f"s{i}") for i in range(SENDERS)]
    receiver = await connect_to_chat(stack, gateway, "r")

    async def send_all(i: int, client: WsClient) -> list[int]:
        acks = await asyncio.gather(
            *(
                client.ack("send_message", {"recipient_id": "r", "text": f"{i}:{n}"}, timeout=30)
                for n in range(EACH)
            )
        )
        return [ack["seq"] for ack in acks]

    seqs = await asyncio.gather(*(send_all(i, c) for i, c in enumerate(senders)))
    for sender_seqs in seqs:
        assert sorted(sender_seqs) == list(range(1, EACH + 1)), "each stored once, gap-free"

    await poll(
        lambda: receiver.count("message_received") >= SENDERS * EACH, 30, "every message pushed"
    )
    for i in range(SENDERS):
        texts = [
            m["data"]["text"] for m in receiver.frames if m["data"].get("sender_id") == f"s{i}"
        ]
        assert texts == [f"{i}:{n}" for n in range(EACH)], "each pushed once, in the order sent"

    async with httpx.AsyncClient(base_url=gateway.http) as http:
        metrics = (await http.get("/metrics")).text
    assert commands_in_shared_messages(metrics) > 0, "some commands shared a message"


async def test_a_senders_messages_are_pushed_in_the_order_sent(stack: Stack) -> None:
    """Sends a few ms apart land some alone and some in batches, handled by different chat
    workers: each is still pushed to the recipient in the order sent (seq order)."""
    stack.start_service("chat")
    gateway = stack.start_gateway(NO_RATE_LIMITS)
    for round_ in range(6):
        alice = await connect_to_chat(stack, gateway, f"alice{round_}")
        bob = await connect_to_chat(stack, gateway, f"bob{round_}")
        for i in range(20):
            await alice.send("send_message", {"recipient_id": f"bob{round_}", "text": f"m{i}"})
            await asyncio.sleep(0.003)  # paces the sender (not a wait for a condition)
        await bob.event("message_received", text="m19", timeout=15)  # the last one sent
        pushed = [f["data"] for f in bob.frames if f.get("event") == "message_received"]
        assert [m["seq"] for m in pushed] == list(range(1, 21)), f"round {round_}"
        assert [m["text"] for m in pushed] == [f"m{i}" for i in range(20)]
        await alice.close()
        await bob.close()
