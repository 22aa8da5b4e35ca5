"""The SDK when things go wrong on the real stack: services that do not answer, and a gateway
killed and restarted while a peer keeps sending (reconnection, backoff, no loss, no dupes)."""

from __future__ import annotations

import asyncio
import time

import instantmentor_client as sdk
import pytest

from tests.support.stack import Stack, poll

EVENTUALLY_S = 15.0


async def test_request_timeout_and_the_gateways_unavailable(stack: Stack) -> None:
    # no service runs: nobody answers the commands
    patient = stack.start_gateway(IM_REQUEST_TIMEOUT_S="60")
    hasty = stack.start_gateway(IM_REQUEST_TIMEOUT_S="0.5")
    token = stack.token("sam", "student", "Sam")

    async with sdk.InstantMentorClient(patient.ws, token=token, request_timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(sdk.RequestTimeout) as timed_out:
            await client.get_mentors()
        assert 0.4 < time.monotonic() - started < 3
        assert timed_out.value.event == "get_mentors" and isinstance(timed_out.value, TimeoutError)
        with pytest.raises(sdk.RequestTimeout):
            await client.accept_call("no-such-call", timeout=0.3)
        # chat's commands go to the partition queues chat declares: with no chat at all the
        # gateway learns at once that no queue took the command, which was never executed
        with pytest.raises(sdk.Unavailable) as refused:
            await client.send_message("hi", recipient_id="bob", timeout=5)
        assert refused.value.event == "send_message" and "no queue" in str(refused.value)
        assert (await client.ping()).server_time  # the connection itself is fine

    async with sdk.InstantMentorClient(hasty.ws, token=token, request_timeout=20) as client:
        with pytest.raises(sdk.Unavailable) as unavailable:
            await client.list_help_requests()
        assert type(unavailable.value) is sdk.Unavailable  # the server's, not a local one
        assert (unavailable.value.code, unavailable.value.event) == (
            "unavailable",
            "list_help_requests",
        )
        assert client.connected


async def test_reconnects_with_backoff_after_a_gateway_restart_and_loses_nothing(
    stack: Stack,
) -> None:
    stack.start_service("presence")
    stack.start_service("chat")
    bobs_gateway = stack.start_gateway()
    alices_gateway = stack.start_gateway()
    attempts: list[sdk.ReconnectAttempt] = []
    bob = sdk.InstantMentorClient(
        bobs_gateway.ws,
        token=stack.token("bob", "student", "Bob"),
        backoff_base=0.05,
        backoff_cap=0.4,
        on_reconnect_attempt=attempts.append,
    )
    alice = sdk.InstantMentorClient(alices_gateway.ws, token=stack.token("alice"))
    received: list[str] = []
    bob.on("message_received", lambda e: received.append(e.data["message_id"]))
    await bob.connect()
    await alice.connect()
    await bob.list_conversations()  # bob's connection is announced: messages now arrive live

    sent: list[str] = []
    sent_while_away: list[str] = []
    stop = asyncio.Event()

    async def keep_sending() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            away = not bob.connected
            ack = await alice.send_message(f"message {n}", recipient_id="bob")
            sent.append(ack.message_id)
            if away and not bob.connected:
                sent_while_away.append(ack.message_id)
            await asyncio.sleep(0.05)  # pacing of the peer (20 msg/s), not a wait

    sender = asyncio.create_task(keep_sending())
    try:
        await poll(lambda: len(received) >= 10, EVENTUALLY_S, "len(received) >= 10")
        bobs_gateway.process.kill()
        await poll(lambda: not bob.connected, EVENTUALLY_S, "not bob.connected")
        # while the gateway is away: requests wait, then give up without sending
        with pytest.raises(sdk.NotConnected):
            await bob.get_mentors(timeout=0.2)
        waiting = asyncio.create_task(bob.list_conversations(timeout=60))
        await poll(
            lambda: len(attempts) >= 6 and len(sent_while_away) >= 3,
            EVENTUALLY_S,
            "len(attempts) >= 6 and len(sent_while_away) >= 3",
        )
        # started in a thread: the SDK keeps retrying and alice keeps sending meanwhile
        await asyncio.to_thread(stack.start_gateway, port=bobs_gateway.port)
        session = await bob.wait_connected(timeout=30)
        assert session.connection_id and bob.stats.connections == 2
        (conversation,) = await waiting  # the request made while away succeeded after it
        assert conversation.peer_id == "alice"
        sent_after = len(sent)
        await poll(
            lambda: len(sent) >= sent_after + 10, EVENTUALLY_S, "len(sent) >= sent_after + 10"
        )
    finally:
        stop.set()
        await sender

    # every message exactly once, in spite of catch-up + sync + live overlapping
    await poll(lambda: len(received) >= len(sent), EVENTUALLY_S, "len(received) >= len(sent)")
    assert sorted(received) == sorted(sent) and len(set(received)) == len(received)
    assert bob.watermarks == {conversation.conversation_id: len(sent)}
    assert bob.stats.duplicates_dropped > 0  # overlaps happened and were dropped

    # backoff: ceilings double from the base up to the cap, delays are jittered below them
    ceilings = [a.ceiling for a in attempts]
    assert ceilings[:5] == [0.05, 0.1, 0.2, 0.4, 0.4] and max(ceilings) == 0.4
    assert len(attempts) >= 6 and set(ceilings[4:]) == {0.4}  # the cap holds
    assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
    assert all(0 <= a.delay <= a.ceiling for a in attempts)
    assert all(a.error is not None for a in attempts)

    # the delivered marker followed: a new connection of bob gets no catch-up of old messages
    await poll(lambda: bob.tracker.ackable() == {}, EVENTUALLY_S, "bob.tracker.ackable() == {}")
    fresh = sdk.InstantMentorClient(stack.gateways[-1].ws, token=stack.token("bob"))
    fresh_messages = fresh.events("message_received")
    async with fresh:
        last = await alice.send_message("after all", recipient_id="bob")
        first = await fresh_messages.next(timeout=10)
        assert first.data["message_id"] == last.message_id
    await alice.close()
    await bob.close()
