"""PROTOCOL §1: `connected` is always the first frame, and a connection is bound to its user
before it is sent, so a push sent right after `connected` is never lost."""

from __future__ import annotations

import asyncio

from tests.support.client import WsClient
from tests.support.stack import Stack


async def test_connected_comes_first_while_broadcasts_fly(stack: Stack) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway()
    mentor = await WsClient.connect(gateway.ws, stack.token("maya", "mentor"))
    await mentor.event("connected")
    flipping = True

    async def flip() -> None:
        i = 0
        while flipping:
            i += 1
            event = "mentor_available" if i % 2 else "mentor_busy"
            await mentor.ack(event, {"status_message": f"m{i}"} if i % 2 else {})

    flipper = asyncio.create_task(flip())
    students = []
    try:
        for n in range(20):
            student = await WsClient.connect(gateway.ws, stack.token(f"s{n}"))
            students.append(student)
            await student.event("connected")
            await student.event("mentor_status_snapshot")
    finally:
        flipping = False
        await flipper
    for student in students:
        assert student.frames[0]["event"] == "connected", student.frames[:3]
        await student.close()
    await mentor.close()


async def test_a_push_right_after_connected_is_delivered(stack: Stack) -> None:
    stack.start_service("chat")
    gateway = stack.start_gateway()
    bob = await WsClient.connect(gateway.ws, stack.token("bob"))
    await bob.event("connected")
    for _ in range(10):
        alice = await WsClient.connect(gateway.ws, stack.token("alice"))
        await alice.event("connected")
        await bob.send("user_typing", {"recipient_id": "alice"})  # transient: no catch-up
        await alice.event("user_typing", user_id="bob", timeout=5)
        await alice.close()
    await bob.close()
