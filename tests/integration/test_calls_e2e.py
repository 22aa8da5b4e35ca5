"""Calls end to end: real broker, gateway, presence and calls processes, real WebSockets.

One stack serves the whole module (each test uses its own users); tests that kill or
duplicate the calls process have their own stack in ``test_calls_resilience.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.broker import Broker
from tests.support.client import WsClient, bearer
from tests.support.stack import Gateway, Stack
from tests.support.users import Users, users_fixture

RING_TIMEOUT_S = 4.0  # long enough for the grace (1 s) to end a ringing call first


@pytest.fixture(scope="module")
def module_stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Path(tmp_path_factory.mktemp("calls-e2e"))
    services = {"presence": {}, "calls": {"IM_CALL_RING_TIMEOUT_S": str(RING_TIMEOUT_S)}}
    with Stack.running(broker.url, base, services) as running:
        yield running


users = users_fixture(Users)


async def ring(caller: WsClient, receiver: WsClient, receiver_id: str, **extra: Any) -> str:
    """``caller`` calls ``receiver_id``; returns the call id once ``receiver`` rings."""
    ack = await caller.ack(
        "initiate_call", {"receiver_id": receiver_id, "call_type": "video", **extra}
    )
    assert ack["state"] == "ringing", ack
    call_id = str(ack["call_id"])
    await receiver.event("call_initiated", call_id=call_id)
    return call_id


async def pushed_to_both(
    parties: tuple[WsClient, WsClient], event: str, call_id: str, timeout: float = 10.0
) -> dict[str, Any]:
    """The data of ``event`` about ``call_id``, which both parties got alike."""
    first, second = [(await p.event(event, timeout, call_id=call_id))["data"] for p in parties]
    assert first == second, (first, second)
    return dict(first)


async def test_a_full_call(users: Users, gw: Gateway) -> None:
    alice = await users.ws("alice")
    mentor = await users.ws("maya", "mentor")
    mentor_id, alice_id = users.id("maya"), users.id("alice")

    ack = await alice.ack(
        "initiate_call",
        {"receiver_id": mentor_id, "call_type": "video", "call_data": {"topic": "algebra"}},
    )
    assert ack["state"] == "ringing" and ack["expires_at"].endswith("Z")
    call_id = ack["call_id"]
    ringing = (await mentor.event("call_initiated", call_id=call_id))["data"]
    assert ringing == {
        "call_id": call_id,
        "caller_id": alice_id,
        "caller_name": "Alice",
        "caller_role": "student",
        "receiver_id": mentor_id,
        "call_type": "video",
        "call_data": {"topic": "algebra"},
        "created_at": ringing["created_at"],
        "expires_at": ack["expires_at"],
    }
    assert ringing["created_at"] < ringing["expires_at"]

    accepted = await mentor.ack("accept_call", {"call_id": call_id, "call_data": {"cam": True}})
    assert accepted == {"call_id": call_id, "state": "accepted"}
    for party in (alice, mentor):
        pushed = (await party.event("call_accepted", call_id=call_id))["data"]
        assert pushed["accepted_by"] == mentor_id and pushed["call_data"] == {"cam": True}
        assert pushed["accepted_at"].endswith("Z")

    assert await alice.ack("call_signal", {"call_id": call_id, "signal": {"type": "offer"}}) == {}
    offer = await mentor.event("call_signal", call_id=call_id)
    assert offer["data"] == {
        "call_id": call_id,
        "from_user_id": alice_id,
        "signal": {"type": "offer"},
    }
    await mentor.ack(
        "call_signal", {"call_id": call_id, "signal": {"type": "answer", "sdp": "v=0"}}
    )
    answer = await alice.event("call_signal", call_id=call_id)
    assert answer["data"]["from_user_id"] == mentor_id
    assert answer["data"]["signal"] == {"type": "answer", "sdp": "v=0"}
    assert alice.count("call_signal") == 1 and mentor.count("call_signal") == 1  # not echoed

    ended = await alice.ack("end_call", {"call_id": call_id})
    assert ended == {"call_id": call_id, "state": "ended"}
    for party in (alice, mentor):
        data = (await party.event("call_ended", call_id=call_id))["data"]
        assert data["ended_by"] == alice_id and data["reason"] == "hangup"
        assert isinstance(data["duration_s"], float) and data["duration_s"] > 0

    async with httpx.AsyncClient(base_url=gw.http) as http:
        token = users.stack.token(alice_id, "student", "Alice")
        response = await http.get("/api/calls", headers=bearer(token))
    assert response.status_code == 200, response.text
    [record] = response.json()["calls"]
    assert record["call_id"] == call_id
    assert (record["direction"], record["peer_id"], record["peer_name"]) == (
        "outgoing",
        mentor_id,
        "Maya",
    )
    assert (record["state"], record["outcome"]) == ("ended", "completed")
    assert record["duration_s"] == data["duration_s"]
    async with httpx.AsyncClient(base_url=gw.http) as http:  # paging back past it: nothing
        auth = bearer(token)
        older = await http.get(f"/api/calls?before={record['created_at']}&limit=5", headers=auth)
        bad = await http.get("/api/calls?limit=0", headers=auth)
    assert older.status_code == 200 and older.json()["calls"] == []
    assert bad.status_code == 400


async def test_the_mentor_is_in_session_during_the_call_and_back_afterwards(users: Users) -> None:
    alice = await users.ws("alice")
    mentor = await users.ws("maya", "mentor")
    mentor_id = users.id("maya")
    await alice.event("mentor_status_update", mentor_id=mentor_id, status="available")
    call_id = await ring(alice, mentor, mentor_id)
    await mentor.ack("accept_call", {"call_id": call_id})
    await alice.event("mentor_status_update", mentor_id=mentor_id, status="in_session")
    await mentor.ack("end_call", {"call_id": call_id})
    back = await alice.wait_for(
        lambda f: (
            f["event"] == "mentor_status_update"
            and f["data"]["mentor_id"] == mentor_id
            and f["data"]["status"] == "available"
            and alice.count("mentor_status_update", mentor_id=mentor_id, status="in_session") > 0
        ),
        what="mentor available again after the call",
    )
    assert back["data"]["online"] is True


async def test_reject_with_a_reason(users: Users) -> None:
    alice, bob = await users.ws("alice"), await users.ws("bob")
    call_id = await ring(alice, bob, users.id("bob"))
    ack = await bob.ack("reject_call", {"call_id": call_id, "reason": "in a lecture"})
    assert ack == {"call_id": call_id, "state": "rejected"}
    assert await pushed_to_both((alice, bob), "call_rejected", call_id) == {
        "call_id": call_id,
        "rejected_by": users.id("bob"),
        "reason": "in a lecture",
    }
    assert await bob.error("accept_call", {"call_id": call_id}) == "conflict"


async def test_cancel_while_ringing(users: Users) -> None:
    alice, bob = await users.ws("alice"), await users.ws("bob")
    call_id = await ring(alice, bob, users.id("bob"))
    assert (await alice.ack("end_call", {"call_id": call_id}))["state"] == "ended"
    assert await pushed_to_both((alice, bob), "call_ended", call_id) == {
        "call_id": call_id,
        "ended_by": users.id("alice"),
        "reason": "cancelled",
        "duration_s": 0.0,
    }
    assert await bob.error("accept_call", {"call_id": call_id}) == "conflict"


async def test_nobody_answers_the_call_times_out(users: Users) -> None:
    alice, bob = await users.ws("alice"), await users.ws("bob")
    call_id = await ring(alice, bob, users.id("bob"))
    timed_out = await pushed_to_both((alice, bob), "call_timeout", call_id, RING_TIMEOUT_S + 8)
    assert timed_out == {"call_id": call_id}
    assert await bob.error("accept_call", {"call_id": call_id}) == "conflict"
    # Both lines are free again.
    await ring(bob, alice, users.id("alice"))


async def test_offline_receiver_and_busy_parties(users: Users) -> None:
    alice, bob, carol = [await users.ws(n) for n in ("alice", "bob", "carol")]
    offline = await alice.ack(
        "initiate_call", {"receiver_id": users.id("ghost"), "call_type": "audio"}
    )
    assert (offline["state"], offline["reason"]) == ("rejected", "offline")
    pushed = await alice.event("call_rejected", call_id=offline["call_id"])
    assert pushed["data"] == {
        "call_id": offline["call_id"],
        "rejected_by": None,
        "reason": "offline",
    }

    await ring(alice, bob, users.id("bob"))
    for caller, receiver in ((carol, "bob"), (carol, "alice"), (bob, "carol")):
        busy = await caller.ack(
            "initiate_call", {"receiver_id": users.id(receiver), "call_type": "audio"}
        )
        assert (busy["state"], busy["reason"]) == ("rejected", "busy")
        pushed = await caller.event("call_rejected", call_id=busy["call_id"])
        assert pushed["data"]["rejected_by"] is None and pushed["data"]["reason"] == "busy"
    assert bob.count("call_initiated") == 1 and carol.count("call_initiated") == 0


async def test_every_device_rings_and_stops_when_one_answers(users: Users) -> None:
    alice = await users.ws("alice")
    phone, laptop = await users.ws("bob"), await users.ws("bob")
    call_id = await ring(alice, phone, users.id("bob"))
    await laptop.event("call_initiated", call_id=call_id)
    await phone.ack("accept_call", {"call_id": call_id})
    for device in (phone, laptop, alice):
        await device.event("call_accepted", call_id=call_id)
    assert await laptop.error("accept_call", {"call_id": call_id}) == "conflict"
    await laptop.ack("end_call", {"call_id": call_id})
    for device in (phone, laptop, alice):
        await device.event("call_ended", call_id=call_id, reason="hangup")


async def test_reconnecting_parties_see_the_call_still_ringing(users: Users) -> None:
    alice, bob = await users.ws("alice"), await users.ws("bob")
    call_id = await ring(alice, bob, users.id("bob"))
    await alice.close()
    alice_again = await users.ws("alice")  # within the reconnect grace
    caught_up = await alice_again.event("call_initiated", call_id=call_id)
    assert caught_up["data"]["caller_id"] == users.id("alice")
    bob_laptop = await users.ws("bob")
    await bob_laptop.event("call_initiated", call_id=call_id)
    await bob_laptop.ack("accept_call", {"call_id": call_id})
    await alice_again.event("call_accepted", call_id=call_id)
    await alice_again.ack("end_call", {"call_id": call_id})


async def test_a_party_gone_past_the_grace_ends_the_call(users: Users) -> None:
    alice, bob = await users.ws("alice"), await users.ws("bob")
    call_id = await ring(alice, bob, users.id("bob"))
    await bob.ack("accept_call", {"call_id": call_id})
    await bob.close()
    lost = await alice.event("call_ended", call_id=call_id, timeout=15)
    assert lost["data"]["reason"] == "connection_lost" and lost["data"]["ended_by"] is None

    carol = await users.ws("carol")
    ringing = await ring(carol, alice, users.id("alice"))
    await carol.close()
    cancelled = await alice.event("call_ended", call_id=ringing, timeout=15)
    assert cancelled["data"] == {
        "call_id": ringing,
        "ended_by": None,
        "reason": "cancelled",
        "duration_s": 0.0,
    }


async def test_error_codes(users: Users) -> None:
    alice, bob, eve = [await users.ws(n) for n in ("alice", "bob", "eve")]
    call_id = await ring(alice, bob, users.id("bob"))
    assert await alice.error(
        "initiate_call", {"receiver_id": users.id("alice"), "call_type": "audio"}
    ) == ("invalid_payload")
    assert await bob.error("accept_call", {"call_id": "no-such-call"}) == "not_found"
    assert await eve.error("accept_call", {"call_id": call_id}) == "not_found"
    assert await eve.error("end_call", {"call_id": call_id}) == "not_found"
    assert await eve.error("call_signal", {"call_id": call_id, "signal": {"x": 1}}) == "not_found"
    assert await alice.error("accept_call", {"call_id": call_id}) == "forbidden"
    assert await alice.error("reject_call", {"call_id": call_id}) == "forbidden"
    await bob.ack("accept_call", {"call_id": call_id})
    assert await bob.error("accept_call", {"call_id": call_id}) == "conflict"
    await bob.ack("end_call", {"call_id": call_id})
    assert await bob.error("accept_call", {"call_id": call_id}) == "conflict"
    assert await alice.error("end_call", {"call_id": call_id}) == "conflict"
    assert await alice.error("call_signal", {"call_id": call_id, "signal": {"x": 1}}) == "conflict"
    # An error costs nothing: the connection still works.
    assert (await alice.request("ping"))["event"] == "pong"
