"""Calls that survive a killed calls process, and races decided once across two replicas."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.client import WsClient, bearer
from tests.support.postgres import Databases
from tests.support.stack import Stack
from tests.support.users import connect


async def ring(caller: WsClient, receiver: WsClient, receiver_id: str) -> str:
    ack = await caller.ack("initiate_call", {"receiver_id": receiver_id, "call_type": "audio"})
    assert ack["state"] == "ringing", ack
    await receiver.event("call_initiated", call_id=ack["call_id"])
    return str(ack["call_id"])


async def test_a_sigkilled_calls_service_loses_no_call_and_no_timer(stack: Stack) -> None:
    stack.start_service("presence")
    calls = stack.start_service("calls", IM_CALL_RING_TIMEOUT_S="2")
    gateway = stack.start_gateway()
    alice, bob = await connect(stack, gateway, "alice"), await connect(stack, gateway, "bob")
    carol, dave = await connect(stack, gateway, "carol"), await connect(stack, gateway, "dave")
    talking = await ring(carol, dave, "dave")
    await dave.ack("accept_call", {"call_id": talking})
    ringing = await ring(alice, bob, "bob")

    calls.kill()
    assert not calls.alive()
    stack.start_service("calls", IM_CALL_RING_TIMEOUT_S="2")

    # The ring timeout armed before the kill still fires.
    for party in (alice, bob):
        await party.event("call_timeout", call_id=ringing, timeout=20)
    assert await bob.error("accept_call", {"call_id": ringing}) == "conflict"
    # The accepted call is still there, with its start time.
    assert (await carol.ack("end_call", {"call_id": talking}))["state"] == "ended"
    ended = await dave.event("call_ended", call_id=talking)
    assert ended["data"]["reason"] == "hangup" and ended["data"]["duration_s"] > 0
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        token = stack.token("alice", "student")
        history = await http.get("/api/calls", headers=bearer(token))
    assert [(c["call_id"], c["outcome"]) for c in history.json()["calls"]] == [(ringing, "missed")]
    for client in (alice, bob, carol, dave):
        await client.close()


async def replies(*sends: tuple[WsClient, str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every request at once; their replies, in order."""
    return list(await asyncio.gather(*(c.request(event, data) for c, event, data in sends)))


async def test_two_replicas_decide_every_race_once(stack: Stack, databases: Databases) -> None:
    stack.start_service("presence")
    replicas = [stack.start_service("calls"), stack.start_service("calls")]
    gateway = stack.start_gateway()
    alice = await connect(stack, gateway, "alice")
    phone, laptop = await connect(stack, gateway, "bob"), await connect(stack, gateway, "bob")

    for _ in range(8):  # two devices accepting at once
        call_id = await ring(alice, phone, "bob")
        await laptop.event("call_initiated", call_id=call_id)
        answers = await replies(
            (phone, "accept_call", {"call_id": call_id}),
            (laptop, "accept_call", {"call_id": call_id}),
        )
        assert sorted(a["event"] for a in answers) == ["ack", "error"], answers
        assert [a["data"]["code"] for a in answers if a["event"] == "error"] == ["conflict"]
        for client in (alice, phone, laptop):
            await client.event("call_accepted", call_id=call_id)
        await alice.ack("end_call", {"call_id": call_id})
        for client in (alice, phone, laptop):
            await client.event("call_ended", call_id=call_id)
            assert client.count("call_accepted", call_id=call_id) == 1

    outcomes = set()
    for _ in range(8):  # the caller cancels while the receiver accepts
        call_id = await ring(alice, phone, "bob")
        cancel, accept = await replies(
            (alice, "end_call", {"call_id": call_id}),
            (phone, "accept_call", {"call_id": call_id}),
        )
        assert cancel["event"] == "ack", cancel
        seen = [(await c.event("call_ended", call_id=call_id))["data"] for c in (alice, laptop)]
        assert seen[0] == seen[1]
        if seen[0]["reason"] == "cancelled":
            assert accept["event"] == "error" and accept["data"]["code"] == "conflict"
            assert alice.count("call_accepted", call_id=call_id) == 0
        else:
            assert seen[0]["reason"] == "hangup" and accept["event"] == "ack"
            await alice.event("call_accepted", call_id=call_id)
        outcomes.add(seen[0]["reason"])
    assert outcomes <= {"cancelled", "hangup"}
    # Both replicas took part (the broker spreads the commands over them).
    for replica in replicas:
        assert " accepted " in replica.log() or " ended " in replica.log()
        assert f"schema at the newest revision on {databases.kind}" in replica.log()
    for client in (alice, phone, laptop):
        await client.close()
