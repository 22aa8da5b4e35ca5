"""The calls handlers without a broker: a Request in, acks, pushes, facts and timers out.

A fake "gateway" says which users have a connection (``deliver_now``); two handler sets on one
SQLite file stand for two replicas.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.calls.handlers import CallHandlers
from services.calls.store import CallStore
from shared.auth import Identity, Role
from shared.errors import RealtimeError, Unavailable
from shared.protocol.envelope import CommandOrigin
from shared.runtime.outbox import (
    ConnectionClose,
    ConnectionPush,
    Outbox,
    Push,
    Request,
    UserPush,
    UserSpread,
)
from shared.runtime.routes import validate
from tests.support.clock import FakeClock
from tests.support.postgres import Databases

RING = 30.0
T0 = 10_000.0

ALICE = Identity("alice", Role.STUDENT, "Alice")
BOB = Identity("bob", Role.MENTOR, "Bob")
CAROL = Identity("carol", Role.STUDENT, "Carol")
EVE = Identity("eve", Role.STUDENT, "Eve")

CONNECTIONS = "gateway.connections_changed"


@dataclass
class Result:
    out: Outbox
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def reply(self) -> dict[str, Any]:
        assert self.ok, f"failed with {self.code}"
        return self.out.reply or {}

    def pushed(self, event: str) -> dict[str, dict[str, Any]]:
        """user id → data of the ``event`` pushes to that user."""
        return {
            p.user_id: p.frame["data"]
            for p in self.out.pushes
            if isinstance(p, UserPush) and p.frame["event"] == event
        }

    @property
    def events(self) -> list[tuple[str, str]]:
        return sorted(
            (p.user_id, p.frame["event"]) for p in self.out.pushes if isinstance(p, UserPush)
        )

    @property
    def facts(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f.name, f.data) for f in self.out.facts]


def frame_of(push: Push) -> dict[str, Any]:
    """The frame ``push`` carries (a push that carries none fails the test)."""
    assert not isinstance(push, ConnectionClose | UserSpread), push
    return push.frame


@dataclass
class Harness:
    """One calls replica; ``online`` is shared with the other replicas (the fake gateway)."""

    handlers: CallHandlers
    online: set[str]
    delivered: list[Push] = field(default_factory=list)

    async def deliver_now(self, push: Push) -> bool:
        self.delivered.append(push)
        return isinstance(push, UserPush) and push.user_id in self.online

    async def run(
        self,
        event: str,
        data: dict[str, Any],
        user: Identity | None = None,
        *,
        connection: str = "conn-1",
        redelivered: bool = False,
    ) -> Result:
        request = Request(
            event=event,
            data=data,
            payload=None,
            user=user,
            origin=CommandOrigin(gateway_id="gw", connection_id=connection, reply_to="gw.q")
            if user
            else None,
            redelivered=redelivered,
            deliver_now=self.deliver_now,
        )
        try:
            route = self.handlers.table()[event]
            request.payload = validate(route, data, user)  # as the runner does
            await route.handler(request)
        except RealtimeError as exc:
            return Result(Outbox(), str(exc.code))
        return Result(request.out)

    async def call(self, caller: Identity = ALICE, receiver: str = "bob", **extra: Any) -> str:
        result = await self.run(
            "initiate_call", {"receiver_id": receiver, "call_type": "video", **extra}, caller
        )
        assert result.reply["state"] == "ringing", result.reply
        return str(result.reply["call_id"])


_ids = itertools.count(1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def stores(databases: Databases) -> AsyncIterator[list[CallStore]]:
    url = databases.url("calls")
    opened = [CallStore(url), CallStore(url)]
    for store in opened:
        await store.start()
    yield opened
    for store in opened:
        await store.close()


@pytest.fixture
def online() -> set[str]:
    return {"alice", "bob", "carol"}


def make(store: CallStore, clock: FakeClock, online: set[str]) -> Harness:
    handlers = CallHandlers(store, RING, clock=clock, new_id=lambda: f"call{next(_ids)}")
    return Harness(handlers, online)


@pytest.fixture
def calls(stores: list[CallStore], clock: FakeClock, online: set[str]) -> Harness:
    return make(stores[0], clock, online)


@pytest.fixture
def replica(stores: list[CallStore], clock: FakeClock, online: set[str]) -> Harness:
    """A second replica on the same database."""
    return make(stores[1], clock, online)


# -- initiate --------------------------------------------------------------------------------


async def test_initiate_rings_the_receiver_and_arms_the_timer(calls: Harness) -> None:
    result = await calls.run(
        "initiate_call",
        {"receiver_id": "bob", "call_type": "video", "call_data": {"offer": "sdp"}},
        ALICE,
    )
    ack = result.reply
    assert ack["state"] == "ringing" and ack["call_id"]
    assert ack["expires_at"] == "1970-01-01T02:47:10.000Z"  # T0 + 30 s
    [push] = calls.delivered
    assert isinstance(push, UserPush) and push.user_id == "bob"
    assert push.frame == {
        "event": "call_initiated",
        "data": {
            "call_id": ack["call_id"],
            "caller_id": "alice",
            "caller_name": "Alice",
            "caller_role": "student",
            "receiver_id": "bob",
            "call_type": "video",
            "call_data": {"offer": "sdp"},
            "created_at": "1970-01-01T02:46:40.000Z",
            "expires_at": ack["expires_at"],
        },
    }
    [timer] = result.out.timers
    assert (timer.event, timer.data, timer.delay_s) == (
        "ring_timeout",
        {"call_id": ack["call_id"]},
        RING,
    )
    assert result.out.pushes == [] and result.facts == []


async def test_calling_yourself_is_invalid(calls: Harness) -> None:
    result = await calls.run("initiate_call", {"receiver_id": "alice", "call_type": "audio"}, ALICE)
    assert result.code == "invalid_payload"
    assert calls.delivered == []


async def test_a_receiver_without_connection_rejects_the_call_as_offline(
    calls: Harness, online: set[str]
) -> None:
    online.discard("bob")
    result = await calls.run("initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE)
    assert result.reply["state"] == "rejected" and result.reply["reason"] == "offline"
    call_id = result.reply["call_id"]
    rejected = {"call_id": call_id, "rejected_by": None, "reason": "offline"}
    assert result.pushed("call_rejected") == {"alice": rejected, "bob": rejected}
    assert result.out.timers == []
    # The line is free again: the caller can call somebody else at once.
    assert (
        await calls.run("initiate_call", {"receiver_id": "carol", "call_type": "audio"}, ALICE)
    ).reply["state"] == "ringing"


async def test_busy_receiver_or_busy_caller_rejects_as_busy(calls: Harness) -> None:
    await calls.call(ALICE, "bob")
    for caller, receiver in ((CAROL, "bob"), (CAROL, "alice"), (ALICE, "carol")):
        result = await calls.run(
            "initiate_call", {"receiver_id": receiver, "call_type": "audio"}, caller
        )
        assert (result.reply["state"], result.reply["reason"]) == ("rejected", "busy")
        data = {"call_id": result.reply["call_id"], "rejected_by": None, "reason": "busy"}
        assert result.pushed("call_rejected") == {caller.user_id: data, receiver: data}
        assert result.out.timers == []
    # Only the first call rang.
    assert [p.user_id for p in calls.delivered if isinstance(p, UserPush)] == ["bob"]
    assert len(calls.delivered) == 1


async def test_an_accepted_call_keeps_both_parties_busy(calls: Harness) -> None:
    call_id = await calls.call(ALICE, "bob")
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    result = await calls.run("initiate_call", {"receiver_id": "alice", "call_type": "audio"}, CAROL)
    assert result.reply["reason"] == "busy"


# -- accept / reject / end -------------------------------------------------------------------


async def test_accept_tells_both_parties_and_presence(calls: Harness, clock: FakeClock) -> None:
    call_id = await calls.call()
    clock.t += 3
    result = await calls.run("accept_call", {"call_id": call_id, "call_data": {"answer": 1}}, BOB)
    assert result.reply == {"call_id": call_id, "state": "accepted"}
    data = {
        "call_id": call_id,
        "accepted_by": "bob",
        "call_data": {"answer": 1},
        "accepted_at": "1970-01-01T02:46:43.000Z",
    }
    assert result.pushed("call_accepted") == {"alice": data, "bob": data}
    assert result.facts == [
        ("calls.call_accepted", {"call_id": call_id, "caller_id": "alice", "receiver_id": "bob"})
    ]


async def test_reject_with_a_reason(calls: Harness) -> None:
    call_id = await calls.call()
    result = await calls.run("reject_call", {"call_id": call_id, "reason": "in class"}, BOB)
    assert result.reply == {"call_id": call_id, "state": "rejected"}
    data = {"call_id": call_id, "rejected_by": "bob", "reason": "in class"}
    assert result.pushed("call_rejected") == {"alice": data, "bob": data}
    assert result.facts == []


async def test_cancel_while_ringing(calls: Harness) -> None:
    call_id = await calls.call()
    result = await calls.run("end_call", {"call_id": call_id}, ALICE)
    assert result.reply == {"call_id": call_id, "state": "ended"}
    data = {"call_id": call_id, "ended_by": "alice", "reason": "cancelled", "duration_s": 0.0}
    assert result.pushed("call_ended") == {"alice": data, "bob": data}
    assert result.facts == []  # it never occupied anybody


async def test_hang_up_reports_the_duration_and_frees_the_mentor(
    calls: Harness, clock: FakeClock
) -> None:
    call_id = await calls.call()
    clock.t += 2
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    clock.t += 42.25
    result = await calls.run("end_call", {"call_id": call_id}, BOB)
    assert result.reply["state"] == "ended"
    data = {"call_id": call_id, "ended_by": "bob", "reason": "hangup", "duration_s": 42.25}
    assert result.pushed("call_ended") == {"alice": data, "bob": data}
    assert result.facts == [
        ("calls.call_ended", {"call_id": call_id, "caller_id": "alice", "receiver_id": "bob"})
    ]


async def test_signals_go_to_the_other_party_only(calls: Harness) -> None:
    call_id = await calls.call()
    offer = await calls.run("call_signal", {"call_id": call_id, "signal": {"type": "offer"}}, ALICE)
    assert offer.reply == {}
    assert offer.pushed("call_signal") == {
        "bob": {"call_id": call_id, "from_user_id": "alice", "signal": {"type": "offer"}}
    }
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    answer = await calls.run("call_signal", {"call_id": call_id, "signal": {"type": "answer"}}, BOB)
    assert answer.pushed("call_signal") == {
        "alice": {"call_id": call_id, "from_user_id": "bob", "signal": {"type": "answer"}}
    }
    await calls.run("end_call", {"call_id": call_id}, ALICE)
    late = await calls.run("call_signal", {"call_id": call_id, "signal": {"type": "ice"}}, BOB)
    assert late.code == "conflict"


async def test_error_codes(calls: Harness) -> None:
    call_id = await calls.call()
    assert (await calls.run("accept_call", {"call_id": "nope"}, BOB)).code == "not_found"
    assert (await calls.run("accept_call", {"call_id": call_id}, EVE)).code == "not_found"
    assert (await calls.run("end_call", {"call_id": call_id}, EVE)).code == "not_found"
    assert (
        await calls.run("call_signal", {"call_id": call_id, "signal": {}}, EVE)
    ).code == "not_found"
    assert (await calls.run("accept_call", {"call_id": call_id}, ALICE)).code == "forbidden"
    assert (await calls.run("reject_call", {"call_id": call_id}, ALICE)).code == "forbidden"
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).ok
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).code == "conflict"
    assert (await calls.run("reject_call", {"call_id": call_id}, BOB)).code == "conflict"
    assert (await calls.run("end_call", {"call_id": call_id}, BOB)).ok
    assert (await calls.run("end_call", {"call_id": call_id}, ALICE)).code == "conflict"
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).code == "conflict"
    assert (
        await calls.run("reject_call", {"call_id": call_id, "reason": "x" * 201}, BOB)
    ).code == "invalid_payload"
    assert (
        await calls.run("initiate_call", {"receiver_id": "bob", "call_type": "fax"}, ALICE)
    ).code == "invalid_payload"


async def test_a_late_answer_is_a_conflict_even_before_the_timer_fired(
    calls: Harness, clock: FakeClock
) -> None:
    call_id = await calls.call()
    clock.t += RING
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).code == "conflict"
    timeout = await calls.run("ring_timeout", {"call_id": call_id})
    assert timeout.pushed("call_timeout") == {
        "alice": {"call_id": call_id},
        "bob": {"call_id": call_id},
    }


# -- timers and facts ------------------------------------------------------------------------


async def test_the_ring_timeout_misses_an_unanswered_call_once(calls: Harness) -> None:
    call_id = await calls.call()
    first = await calls.run("ring_timeout", {"call_id": call_id})
    assert first.events == [("alice", "call_timeout"), ("bob", "call_timeout")]
    again = await calls.run("ring_timeout", {"call_id": call_id})
    assert again.out.pushes == []
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).code == "conflict"


async def test_the_ring_timeout_of_an_answered_call_does_nothing(calls: Harness) -> None:
    call_id = await calls.call()
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    assert (await calls.run("ring_timeout", {"call_id": call_id})).out.pushes == []
    assert (await calls.run("ring_timeout", {"call_id": "unknown"})).out.pushes == []


async def test_a_party_gone_past_the_grace_ends_or_cancels_their_call(calls: Harness) -> None:
    accepted = await calls.call(ALICE, "bob")
    await calls.run("accept_call", {"call_id": accepted}, BOB)
    lost = await calls.run("presence.users_offline", offline("bob", "mentor"))
    data = {"call_id": accepted, "ended_by": None, "reason": "connection_lost", "duration_s": 0.0}
    assert lost.pushed("call_ended") == {"alice": data, "bob": data}
    assert [name for name, _ in lost.facts] == ["calls.call_ended"]

    ringing = await calls.call(CAROL, "alice")
    cancelled = await calls.run("presence.users_offline", offline("carol", "student"))
    assert cancelled.pushed("call_ended")["alice"] == {
        "call_id": ringing,
        "ended_by": None,
        "reason": "cancelled",
        "duration_s": 0.0,
    }
    assert cancelled.facts == []
    nothing = await calls.run("presence.users_offline", offline("carol", "student"))
    assert nothing.out.pushes == []


async def test_both_parties_gone_in_one_batch_end_their_call_once(
    calls: Harness, online: set[str]
) -> None:
    online.add("dave")
    accepted = await calls.call(ALICE, "bob")
    await calls.run("accept_call", {"call_id": accepted}, BOB)
    ringing = await calls.call(CAROL, "dave")
    gone = await calls.run(
        "presence.users_offline", offline("alice", "student", "bob", "mentor", "carol", "student")
    )
    ended = [
        (p.user_id, p.frame["data"]["call_id"], p.frame["data"]["reason"])
        for p in gone.out.pushes
        if isinstance(p, UserPush) and p.frame["event"] == "call_ended"
    ]
    assert sorted(ended) == [  # each call ends once, told to both of its parties
        ("alice", accepted, "connection_lost"),
        ("bob", accepted, "connection_lost"),
        ("carol", ringing, "cancelled"),
        ("dave", ringing, "cancelled"),
    ]
    assert [name for name, _ in gone.facts] == ["calls.call_ended"]


async def test_a_party_connecting_while_a_call_rings_gets_it_in_the_catch_up(
    calls: Harness, clock: FakeClock
) -> None:
    call_id = await calls.call(ALICE, "bob")

    def opened(user: Identity, connection: str) -> dict[str, Any]:
        return {
            "gateway_id": "gw2",
            "connection_id": connection,
            "user_id": user.user_id,
            "role": user.role.value,
            "name": user.name,
            "reply_to": "gw2.q",
            "at": clock.t,
        }

    for user in (BOB, ALICE):
        result = await calls.run(CONNECTIONS, {"opened": [opened(user, f"{user.user_id}-2")]})
        [push] = result.out.pushes
        assert isinstance(push, ConnectionPush)
        assert (push.reply_to, push.connection_id) == ("gw2.q", f"{user.user_id}-2")
        assert push.frame["event"] == "call_initiated"
        assert push.frame["data"]["call_id"] == call_id
    nobody = await calls.run(CONNECTIONS, {"opened": [opened(CAROL, "carol-1")]})
    assert nobody.out.pushes == []
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    answered = await calls.run(CONNECTIONS, {"opened": [opened(BOB, "bob-3")]})
    assert answered.out.pushes == []


# -- history ---------------------------------------------------------------------------------


async def test_list_calls_returns_the_senders_history(calls: Harness, clock: FakeClock) -> None:
    completed = await calls.call(ALICE, "bob")
    clock.t += 1
    await calls.run("accept_call", {"call_id": completed}, BOB)
    clock.t += 10
    await calls.run("end_call", {"call_id": completed}, ALICE)
    clock.t += 1
    missed = await calls.call(BOB, "alice")
    await calls.run("ring_timeout", {"call_id": missed})
    clock.t += 1
    await calls.call(CAROL, "bob")

    history = (await calls.run("list_calls", {}, ALICE)).reply["calls"]
    assert [c["call_id"] for c in history] == [missed, completed]
    assert history[0] | {"created_at": None} == {
        "call_id": missed,
        "direction": "incoming",
        "peer_id": "bob",
        "peer_name": "Bob",
        "caller_id": "bob",
        "receiver_id": "alice",
        "call_type": "video",
        "state": "missed",
        "outcome": "missed",
        "reason": None,
        "created_at": None,
        "accepted_at": None,
        "ended_at": history[0]["ended_at"],
        "duration_s": 0.0,
    }
    assert (history[1]["direction"], history[1]["outcome"], history[1]["duration_s"]) == (
        "outgoing",
        "completed",
        10.0,
    )
    assert history[1]["peer_name"] == "Bob"
    one = (await calls.run("list_calls", {"limit": 1}, ALICE)).reply["calls"]
    assert [c["call_id"] for c in one] == [missed]
    older = await calls.run("list_calls", {"before": history[0]["created_at"]}, ALICE)
    assert [c["call_id"] for c in older.reply["calls"]] == [completed]
    assert (await calls.run("list_calls", {"limit": 0}, ALICE)).code == "invalid_payload"
    assert (await calls.run("list_calls", {"before": "yesterday"}, ALICE)).code == "invalid_payload"
    bob = (await calls.run("list_calls", {}, BOB)).reply["calls"]
    assert [c["outcome"] for c in bob] == ["ringing", "missed", "completed"]


# -- redelivery ------------------------------------------------------------------------------


async def test_a_redelivered_initiate_reannounces_the_call_it_placed(calls: Harness) -> None:
    first = await calls.run("initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE)
    again = await calls.run(
        "initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE, redelivered=True
    )
    assert again.reply == first.reply
    assert [frame_of(p)["data"]["call_id"] for p in calls.delivered] == [first.reply["call_id"]] * 2
    assert [t.event for t in again.out.timers] == ["ring_timeout"]
    # A fresh command from another connection is a new attempt: busy.
    other = await calls.run(
        "initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE, connection="conn-2"
    )
    assert other.reply["reason"] == "busy"


async def test_a_redelivered_accept_publishes_its_effects_again(calls: Harness) -> None:
    call_id = await calls.call()
    await calls.run("accept_call", {"call_id": call_id}, BOB)
    again = await calls.run("accept_call", {"call_id": call_id}, BOB, redelivered=True)
    assert again.reply == {"call_id": call_id, "state": "accepted"}
    assert set(again.pushed("call_accepted")) == {"alice", "bob"}
    assert [name for name, _ in again.facts] == ["calls.call_accepted"]
    # Not a redelivery: a second accept is a conflict.
    assert (await calls.run("accept_call", {"call_id": call_id}, BOB)).code == "conflict"


# -- races between two replicas --------------------------------------------------------------


async def race(first: Any, second: Any) -> tuple[Result, Result]:
    results = await asyncio.gather(first, second)
    return results[0], results[1]


async def test_two_devices_accepting_on_two_replicas_one_wins(
    calls: Harness, replica: Harness
) -> None:
    for _ in range(15):
        call_id = await calls.call()
        phone, laptop = await race(
            calls.run("accept_call", {"call_id": call_id}, BOB, connection="phone"),
            replica.run("accept_call", {"call_id": call_id}, BOB, connection="laptop"),
        )
        assert sorted([phone.code or "ok", laptop.code or "ok"]) == ["conflict", "ok"]
        winner = phone if phone.ok else laptop
        assert set(winner.pushed("call_accepted")) == {"alice", "bob"}
        assert len(winner.facts) == 1
        await calls.run("end_call", {"call_id": call_id}, ALICE)


async def test_accept_against_the_timeout_has_one_outcome(
    calls: Harness, replica: Harness, clock: FakeClock
) -> None:
    seen = set()
    for _ in range(20):
        clock.t += 1  # the history's order
        call_id = await calls.call()
        accept, timeout = await race(
            calls.run("accept_call", {"call_id": call_id}, BOB),
            replica.run("ring_timeout", {"call_id": call_id}),
        )
        if accept.ok:
            assert timeout.out.pushes == []
            await calls.run("end_call", {"call_id": call_id}, BOB)
            seen.add("accepted")
        else:
            assert accept.code == "conflict"
            assert timeout.events == [("alice", "call_timeout"), ("bob", "call_timeout")]
            seen.add("missed")
        history = (await calls.run("list_calls", {"limit": 1}, ALICE)).reply["calls"]
        assert history[0]["state"] == ("ended" if accept.ok else "missed")
    assert seen  # at least one outcome was observed, and each run had exactly one


async def test_accept_against_cancel_has_one_outcome(
    calls: Harness, replica: Harness, clock: FakeClock
) -> None:
    for _ in range(20):
        clock.t += 1  # the history's order
        call_id = await calls.call()
        cancel, accept = await race(
            replica.run("end_call", {"call_id": call_id}, ALICE),
            calls.run("accept_call", {"call_id": call_id}, BOB),
        )
        assert cancel.ok
        ended = cancel.pushed("call_ended")
        assert ended["alice"] == ended["bob"]
        if ended["alice"]["reason"] == "cancelled":  # the cancel was first: no accept
            assert accept.code == "conflict"
            assert cancel.facts == []
        else:  # the accept was first: the caller's end_call hung up the accepted call
            assert accept.ok and ended["alice"]["reason"] == "hangup"
            assert [n for n, _ in accept.facts + cancel.facts] == [
                "calls.call_accepted",
                "calls.call_ended",
            ]
        [stored] = (await calls.run("list_calls", {"limit": 1}, BOB)).reply["calls"]
        assert stored["state"] == "ended"


async def test_two_callers_on_two_replicas_one_rings(
    calls: Harness, replica: Harness, online: set[str]
) -> None:
    online.add("dave")
    dave = Identity("dave", Role.STUDENT, "Dave")
    for round_ in range(10):
        first, second = await race(
            calls.run("initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE),
            replica.run("initiate_call", {"receiver_id": "bob", "call_type": "audio"}, dave),
        )
        states = sorted([first.reply["state"], second.reply["state"]])
        assert states == ["rejected", "ringing"], round_
        ringing = first if first.reply["state"] == "ringing" else second
        caller = ALICE if ringing is first else dave
        await calls.run("end_call", {"call_id": ringing.reply["call_id"]}, caller)


async def test_a_redelivered_timeout_or_offline_fact_reannounces_what_it_did(
    calls: Harness,
) -> None:
    missed = await calls.call(ALICE, "bob")
    await calls.run("ring_timeout", {"call_id": missed})
    again = await calls.run("ring_timeout", {"call_id": missed}, redelivered=True)
    assert again.events == [("alice", "call_timeout"), ("bob", "call_timeout")]

    lost = await calls.call(ALICE, "bob")
    await calls.run("accept_call", {"call_id": lost}, BOB)
    await calls.run("presence.users_offline", offline("bob", "mentor"))
    repeat = await calls.run("presence.users_offline", offline("bob", "mentor"), redelivered=True)
    assert repeat.pushed("call_ended")["alice"]["reason"] == "connection_lost"
    assert [name for name, _ in repeat.facts] == ["calls.call_ended"]


async def test_a_resumed_connection_gets_no_catch_up(calls: Harness, clock: FakeClock) -> None:
    await calls.call(ALICE, "bob")
    fact = {
        "gateway_id": "gw",
        "connection_id": "bob-1",
        "user_id": "bob",
        "role": "mentor",
        "name": "Bob",
        "reply_to": "gw.q",
        "at": clock.t,
        "resumed": True,
    }
    assert (await calls.run(CONNECTIONS, {"opened": [fact]})).out.pushes == []
    fact["resumed"] = False
    assert len((await calls.run(CONNECTIONS, {"opened": [fact]})).out.pushes) == 1


async def test_a_call_that_could_not_be_announced_is_forgotten(
    calls: Harness, stores: list[CallStore]
) -> None:
    async def broker_down(push: Push) -> bool:
        raise Unavailable("message broker unavailable")

    calls.deliver_now = broker_down  # type: ignore[method-assign]
    result = await calls.run("initiate_call", {"receiver_id": "bob", "call_type": "audio"}, ALICE)
    assert result.code == "unavailable"
    assert await stores[0].active_calls_of("alice") == []
    assert await stores[0].history("alice", 10) == []


def offline(*pairs: str) -> dict[str, Any]:
    """A ``presence.users_offline`` fact: ``user_id, role, user_id, role, …``."""
    users = [{"user_id": u, "role": r} for u, r in zip(pairs[::2], pairs[1::2], strict=True)]
    return {"users": users}
