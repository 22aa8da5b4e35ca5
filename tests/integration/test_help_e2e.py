"""Help requests end to end: real broker, gateway, presence and help processes, real WebSockets.

Help learns mentors' statuses from presence facts; a test waits until the student has seen a
status change (``mentor_status_update``) before relying on it: by then presence's fact sits
in help's queue ahead of the student's next command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.client import WsClient
from tests.support.postgres import Databases
from tests.support.stack import Gateway, Stack

Frame = dict[str, Any]


class World:
    """One stack with presence, help and a gateway, and the clients of a test."""

    def __init__(self, stack: Stack, gateway: Gateway) -> None:
        self.stack = stack
        self.gateway = gateway
        self.clients: list[WsClient] = []
        self.watcher: WsClient | None = None

    async def connect(self, user_id: str, role: str) -> WsClient:
        token = self.stack.token(user_id, role, user_id.upper())
        client = await WsClient.connect(self.gateway.ws, token)
        await client.event("connected")
        self.clients.append(client)
        return client

    async def watch(self) -> WsClient:
        """A student who sees every mentor status change (the sync point of the tests)."""
        if self.watcher is None:
            self.watcher = await self.connect("watcher", "student")
            await self.watcher.event("mentor_status_snapshot")
        return self.watcher

    async def mentor(self, user_id: str, status: str = "available") -> WsClient:
        """A connected mentor whose status help has been told."""
        watcher = await self.watch()
        client = await self.connect(user_id, "mentor")
        await watcher.event("mentor_status_update", mentor_id=user_id, online=True)
        if status != "available":
            await client.ack("mentor_busy", {"status": status})
            await watcher.event("mentor_status_update", mentor_id=user_id, status=status)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


@pytest.fixture
async def world(stack: Stack) -> AsyncIterator[World]:
    stack.start_service("presence")
    stack.start_service("help", IM_HELP_EXPIRY_S="60")
    w = World(stack, stack.start_gateway())
    try:
        yield w
    finally:
        await w.close()


def ask(subject: str = "Math", message: str = "help me", **extra: Any) -> dict[str, Any]:
    return {"subject": subject, "message": message, **extra}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def received_ids(client: WsClient) -> list[str]:
    return [f["data"]["request_id"] for f in client.frames if f["event"] == "help_request_received"]


# -- broadcast --------------------------------------------------------------------------------


async def test_a_broadcast_reaches_the_available_mentors_and_not_a_busy_one(world: World) -> None:
    available = [await world.mentor(m) for m in ("m1", "m2", "m3")]
    busy = await world.mentor("m4", status="busy")
    student = await world.connect("s1", "student")
    data = ask(urgency="high", mentor_id="broadcast_to_mentors")
    ack = await student.ack("student_request_help", data)
    assert ack["status"] == "open" and ack["delivered_to"] == 3
    assert epoch(ack["expires_at"]) - time.time() == pytest.approx(60, abs=5)
    for mentor in available:
        frame = await mentor.event("help_request_received", request_id=ack["request_id"])
        data = frame["data"]
        assert (data["student_id"], data["student_name"], data["subject"]) == ("s1", "S1", "Math")
        assert data["urgency"] == "high" and data["status"] == "open" and data["mentor_id"] is None
        assert data["expires_at"] == ack["expires_at"]
    # The busy mentor is not pushed it, but may still list it (and accept it).
    assert (await busy.ack("list_help_requests"))["requests"][0]["request_id"] == ack["request_id"]
    assert received_ids(busy) == []
    listed = await available[0].ack("list_help_requests")
    assert [r["request_id"] for r in listed["requests"]] == [ack["request_id"]]


async def test_a_mentor_becoming_available_gets_open_broadcasts_most_urgent_first(
    world: World,
) -> None:
    mentor = await world.mentor("m1", status="busy")
    student = await world.connect("s1", "student")
    urgency_of: dict[str, str] = {}
    for urgency in ("low", "high", "medium", "high", "low"):
        data = ask(message=f"{urgency} {len(urgency_of)}", urgency=urgency)
        ack = await student.ack("student_request_help", data)
        assert ack["delivered_to"] == 0
        urgency_of[ack["request_id"]] = urgency
    assert received_ids(mentor) == []
    await mentor.ack("mentor_available")
    await mentor.wait_for(lambda _: len(received_ids(mentor)) == 5, what="5 requests")
    order = received_ids(mentor)
    assert [urgency_of[r] for r in order] == ["high", "high", "medium", "low", "low"]
    oldest_first = [r for r in urgency_of if urgency_of[r] == "high"]
    assert order[:2] == oldest_first


# -- targeted ---------------------------------------------------------------------------------


async def test_a_targeted_request_to_an_offline_mentor_arrives_when_they_connect(
    world: World,
) -> None:
    watcher = await world.watch()
    first = await world.mentor("m1")
    await world.mentor("m2")
    await first.close()
    await watcher.event("mentor_status_update", mentor_id="m1", online=False)
    student = await world.connect("s1", "student")
    ack = await student.ack("student_request_help", ask(mentor_id="m1", urgency="low"))
    assert ack["delivered_to"] == 0
    back = await world.connect("m1", "mentor")
    frame = await back.event("help_request_received", request_id=ack["request_id"])
    assert frame["data"]["mentor_id"] == "m1"
    accepted = await back.ack("accept_help_request", {"request_id": ack["request_id"]})
    assert accepted == {"request_id": ack["request_id"], "status": "accepted"}
    told = await student.event("help_request_accepted", request_id=ack["request_id"])
    assert told["data"] == {"request_id": ack["request_id"], "mentor_id": "m1", "mentor_name": "M1"}
    m2 = world.clients[2]
    assert received_ids(m2) == []


# -- accept ---------------------------------------------------------------------------------


async def test_ten_mentors_accepting_at_once_have_exactly_one_winner(
    stack: Stack, databases: Databases
) -> None:
    stack.start_service("presence")
    stack.start_service("help")
    stack.start_service("help")  # two replicas sharing the queue and the database
    world = World(stack, stack.start_gateway())
    try:
        mentors = [await world.mentor(f"m{i}") for i in range(10)]
        student = await world.connect("s1", "student")
        ack = await student.ack("student_request_help", ask())
        rid = ack["request_id"]
        assert ack["delivered_to"] == 10
        for m in mentors:
            await m.event("help_request_received", request_id=rid)
        replies = await asyncio.gather(
            *(m.request("accept_help_request", {"request_id": rid}) for m in mentors)
        )
        winners = [i for i, r in enumerate(replies) if r["event"] == "ack"]
        assert len(winners) == 1, replies
        assert all(r["data"]["code"] == "conflict" for r in replies if r["event"] == "error")
        winner = f"m{winners[0]}"
        told = await student.event("help_request_accepted", request_id=rid)
        assert told["data"]["mentor_id"] == winner
        for i, m in enumerate(mentors):
            if i != winners[0]:
                closed = await m.event("help_request_closed", request_id=rid)
                assert closed["data"]["reason"] == "accepted"
        # Settled: no second winner was told to anyone, the winner got no close.
        await student.ack("list_help_requests")
        assert student.count("help_request_accepted") == 1
        assert mentors[winners[0]].count("help_request_closed") == 0
    finally:
        await world.close()


# -- cancel, decline, expiry ------------------------------------------------------------------


async def test_cancel_closes_the_request_for_the_mentors_shown_it(world: World) -> None:
    m1, m2 = await world.mentor("m1"), await world.mentor("m2")
    student = await world.connect("s1", "student")
    rid = (await student.ack("student_request_help", ask()))["request_id"]
    await m1.event("help_request_received", request_id=rid)
    cancelled = await student.ack("cancel_help_request", {"request_id": rid})
    assert cancelled == {"request_id": rid, "status": "cancelled"}
    for m in (m1, m2):
        closed = await m.event("help_request_closed", request_id=rid)
        assert closed["data"] == {"request_id": rid, "reason": "cancelled"}
    assert await m1.error("accept_help_request", {"request_id": rid}) == "conflict"
    mine = await student.ack("list_help_requests")
    assert [(r["request_id"], r["status"]) for r in mine["requests"]] == [(rid, "cancelled")]


async def test_decline_targeted_tells_the_student_and_broadcast_hides_it(world: World) -> None:
    m1, m2 = await world.mentor("m1"), await world.mentor("m2")
    student = await world.connect("s1", "student")
    targeted = (await student.ack("student_request_help", ask(mentor_id="m1")))["request_id"]
    await m1.event("help_request_received", request_id=targeted)
    declined = await m1.ack("decline_help_request", {"request_id": targeted, "reason": "in class"})
    assert declined == {"request_id": targeted}
    told = await student.event("help_request_declined", request_id=targeted)
    assert told["data"] == {"request_id": targeted, "mentor_id": "m1", "reason": "in class"}
    assert await m1.error("accept_help_request", {"request_id": targeted}) == "conflict"

    broadcast = (await student.ack("student_request_help", ask(message="anyone?")))["request_id"]
    await m1.event("help_request_received", request_id=broadcast)
    hidden = await m1.ack("decline_help_request", {"request_id": broadcast})
    assert hidden == {"request_id": broadcast}
    assert (await m1.ack("list_help_requests"))["requests"] == []
    listed = await m2.ack("list_help_requests")
    assert [r["request_id"] for r in listed["requests"]] == [broadcast]
    assert student.count("help_request_declined") == 1  # a broadcast decline tells nobody
    assert (await m2.ack("accept_help_request", {"request_id": broadcast}))["status"] == "accepted"


async def test_an_open_request_expires_after_the_configured_time(stack: Stack) -> None:
    stack.start_service("presence")
    stack.start_service("help", IM_HELP_EXPIRY_S="2")
    world = World(stack, stack.start_gateway())
    try:
        m1, m2 = await world.mentor("m1"), await world.mentor("m2")
        student = await world.connect("s1", "student")
        ack = await student.ack("student_request_help", ask())
        rid = ack["request_id"]
        expired = await student.event("help_request_expired", request_id=rid, timeout=15)
        assert expired["data"] == {"request_id": rid}
        assert time.time() >= epoch(ack["expires_at"]) - 0.05
        for m in (m1, m2):
            closed = await m.event("help_request_closed", request_id=rid)
            assert closed["data"]["reason"] == "expired"
        assert await m1.error("accept_help_request", {"request_id": rid}) == "conflict"
        assert (await student.ack("list_help_requests"))["requests"][0]["status"] == "expired"
    finally:
        await world.close()


# -- the help service killed ------------------------------------------------------------------


async def test_killing_help_loses_nothing_and_the_expiry_still_fires(stack: Stack) -> None:
    stack.start_service("presence")
    help_process = stack.start_service("help", IM_HELP_EXPIRY_S="4")
    world = World(stack, stack.start_gateway())
    try:
        mentor = await world.mentor("m1")
        student = await world.connect("s1", "student")
        to_expire = await student.ack("student_request_help", ask(message="will expire"))
        to_accept = await student.ack("student_request_help", ask(message="will be accepted"))
        await mentor.event("help_request_received", request_id=to_accept["request_id"])
        help_process.kill()
        # While help is down: the accept waits in its queue.
        await mentor.send("accept_help_request", {"request_id": to_accept["request_id"]}, "late")
        stack.start_service("help", IM_HELP_EXPIRY_S="4")
        reply = await mentor.wait_for(lambda f: f.get("ref") == "late", what="the accept's reply")
        assert reply["event"] == "ack" and reply["data"]["status"] == "accepted"
        await student.event("help_request_accepted", request_id=to_accept["request_id"])
        await student.event("help_request_expired", request_id=to_expire["request_id"], timeout=15)
        closed = await mentor.event("help_request_closed", request_id=to_expire["request_id"])
        assert closed["data"]["reason"] == "expired"
        listed = (await student.ack("list_help_requests"))["requests"]
        statuses = {r["request_id"]: r["status"] for r in listed}
        assert statuses == {to_expire["request_id"]: "expired", to_accept["request_id"]: "accepted"}
    finally:
        await world.close()


# -- every refusal ----------------------------------------------------------------------------


async def test_forbidden_and_invalid_requests(world: World) -> None:
    m1, m2 = await world.mentor("m1"), await world.mentor("m2")
    s1 = await world.connect("s1", "student")
    s2 = await world.connect("s2", "student")
    rid = (await s1.ack("student_request_help", ask(mentor_id="m1")))["request_id"]

    # Wrong role.
    assert await m1.error("student_request_help", ask()) == "forbidden"
    assert await m1.error("cancel_help_request", {"request_id": rid}) == "forbidden"
    assert await s1.error("accept_help_request", {"request_id": rid}) == "forbidden"
    assert await s1.error("decline_help_request", {"request_id": rid}) == "forbidden"
    # Not theirs / unknown.
    assert await m2.error("accept_help_request", {"request_id": rid}) == "not_found"
    assert await m2.error("decline_help_request", {"request_id": rid}) == "not_found"
    assert await s2.error("cancel_help_request", {"request_id": rid}) == "not_found"
    assert await m1.error("accept_help_request", {"request_id": "nope"}) == "not_found"
    assert await s1.error("student_request_help", ask(mentor_id="nobody")) == "not_found"
    # Malformed.
    for bad in (
        {"subject": "", "message": "x"},
        {"subject": "x" * 101, "message": "x"},
        {"subject": "Math", "message": " \n "},
        {"subject": "Math", "message": "x" * 2001},
        {"subject": "Math", "message": "x", "urgency": "asap"},
        {"subject": "Math", "message": "x", "mentor_id": "bad id!"},
        {"subject": ["Math"], "message": "x"},
        {"message": "x"},
    ):
        reply = await s1.request("student_request_help", bad)
        assert reply["event"] == "error", bad
        assert reply["data"]["code"] == "invalid_payload"
        assert reply["data"]["event"] == "student_request_help"
    assert await m1.error("accept_help_request", {}) == "invalid_payload"
    assert await m1.error("decline_help_request", {"request_id": rid, "reason": "x" * 201}) == (
        "invalid_payload"
    )
    # State conflicts: a second accept, cancelling an accepted request.
    assert (await m1.ack("accept_help_request", {"request_id": rid}))["status"] == "accepted"
    assert await m1.error("accept_help_request", {"request_id": rid}) == "conflict"
    assert await m1.error("decline_help_request", {"request_id": rid}) == "conflict"
    assert await s1.error("cancel_help_request", {"request_id": rid}) == "conflict"
    # The connections survived every error.
    assert (await s1.ack("list_help_requests"))["requests"][0]["status"] == "accepted"
