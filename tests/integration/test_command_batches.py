"""Commands batched per service under load, end to end: many senders at once on one gateway,
so commands arrive while the broker confirms earlier ones and go in shared messages. Every
command is still answered once, by its own ref, and every message stored once, in its
sender's order."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import WsClient
from tests.support.stack import NO_RATE_LIMITS, Gateway, Stack, poll

SENDERS = 12
EACH = 15


async def connect(stack: Stack, gateway: Gateway, user: str) -> WsClient:
    client = await WsClient.connect(gateway.ws, stack.token(user, "student"))
    await client.event("connected")
    await client.ack("list_conversations")  # bound and announced: pushes reach it live
    return client


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
    gateway = stack.start_gateway(**NO_RATE_LIMITS)
    senders = [await connect(stack, gateway, f"s{i}") for i in range(SENDERS)]
    receiver = await connect(stack, gateway, "r")

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
