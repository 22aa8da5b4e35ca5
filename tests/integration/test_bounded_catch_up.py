"""A large backlog never locks a client out (issue "hostile input", item 8; PROTOCOL §1–2):
the catch-up on connect is the newest IM_CATCHUP_LIMIT messages, the rest is paged with
get_history, and no server frame is over 256 KiB."""

from __future__ import annotations

import asyncio

from services.chat.domain import conversation_id_for
from tests.support.client import WsClient
from tests.support.stack import NO_RATE_LIMITS, Stack

BACKLOG = 260
LIMIT = 100
WIDE = "é" * 3990  # near the longest text: 8 KB of UTF-8


async def test_a_big_backlog_is_caught_up_newest_first_and_paged_without_a_drop(
    stack: Stack,
) -> None:
    stack.start_service("chat", IM_CATCHUP_LIMIT=str(LIMIT))
    gateway = stack.start_gateway(NO_RATE_LIMITS)
    alice = await WsClient.connect(gateway.ws, stack.token("alice"))
    await alice.event("connected")
    for chunk in range(0, BACKLOG, 20):  # bob is offline: every one waits for him
        await asyncio.gather(
            *(
                alice.ack("send_message", {"recipient_id": "bob", "text": f"{i} {WIDE}"})
                for i in range(chunk, min(chunk + 20, BACKLOG))
            )
        )

    bob = await WsClient.connect(gateway.ws, stack.token("bob"))
    await bob.wait_for(lambda _: bob.count("message_received") >= LIMIT, timeout=30)
    caught = [f["data"]["seq"] for f in bob.frames if f["event"] == "message_received"]
    assert caught == list(range(BACKLOG - LIMIT + 1, BACKLOG + 1)), "the newest, in seq order"

    # the older ones, paged back with before_seq; every frame within 256 KiB
    cid = conversation_id_for("alice", "bob")
    seen: list[int] = []
    before: int | None = caught[0]
    while before is not None:
        frames_before = len(bob.sizes)
        page = await bob.ack(
            "get_history", {"conversation_id": cid, "before_seq": before, "limit": 100}
        )
        assert max(bob.sizes[frames_before:]) <= 256 * 1024
        seen = [m["seq"] for m in page["messages"]] + seen
        before = page["messages"][0]["seq"] if page["has_more"] else None
    assert seen == list(range(1, BACKLOG - LIMIT + 1))
    # after those round trips to chat: the catch-up was those 100 and no more, and bob is in
    assert bob.count("message_received") == LIMIT
    assert bob.closed_code is None, "not dropped as a slow consumer"
    await bob.close()
    await alice.close()
