"""The calls database on a real database, SQLite and PostgreSQL: busy lines, conditional
transitions, history, and two stores (two replicas) racing on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from services.calls import domain
from services.calls.domain import Call, Caller, CallState, RejectReason
from services.calls.store import CallStore
from tests.support.postgres import Databases

T0 = 1_000.0
RING = 30.0


def new_call(call_id: str, caller: str = "alice", receiver: str = "bob", at: float = T0) -> Call:
    return domain.start_call(
        call_id, Caller(caller, caller.title(), "student"), receiver, "audio", None, at, RING, "k"
    )


@pytest.fixture
async def store(databases: Databases) -> AsyncIterator[CallStore]:
    running = CallStore(databases.url("calls"))
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def replicas(databases: Databases) -> AsyncIterator[tuple[CallStore, CallStore]]:
    """Two stores with their own engines on one database, like two calls processes."""
    url = databases.url("shared")
    first, second = CallStore(url), CallStore(url)
    await asyncio.gather(first.start(), second.start())
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
async def ringing(store: CallStore) -> Call:
    """Alice's call to Bob, placed."""
    call = new_call("c1")
    assert await store.place(call)
    return call


def accepted_by_bob(call: Call) -> Call:
    return domain.accept(call, "bob", "Bob", T0 + 1, None)


async def test_a_placed_call_is_stored_as_it_was(store: CallStore, ringing: Call) -> None:
    assert await store.get("c1") == ringing
    assert await store.get("nope") is None


async def test_a_party_in_a_call_is_busy_for_every_other_call(store: CallStore) -> None:
    assert await store.place(new_call("c1", "alice", "bob"))
    # The receiver is busy, the caller is busy, in either role.
    assert not await store.place(new_call("c2", "carol", "bob"))
    assert not await store.place(new_call("c3", "alice", "carol"))
    assert not await store.place(new_call("c4", "carol", "alice"))
    assert not await store.place(new_call("c5", "bob", "carol"))
    for refused in ("c2", "c3", "c4", "c5"):
        assert await store.get(refused) is None
    assert await store.place(new_call("c6", "carol", "dave"))


async def test_the_lines_stay_taken_while_accepted_and_are_freed_at_the_end(
    store: CallStore, ringing: Call
) -> None:
    accepted = accepted_by_bob(ringing)
    assert await store.transition(ringing, accepted)
    assert not await store.place(new_call("c2", "carol", "bob"))
    assert [c.call_id for c in await store.active_calls_of("bob")] == ["c1"]
    ended = domain.hang_up(accepted, "alice", T0 + 9)
    assert await store.transition(accepted, ended)
    assert await store.active_calls_of("bob") == []
    assert await store.place(new_call("c3", "carol", "bob"))


async def test_a_transition_is_written_only_from_the_state_it_was_read_in(
    store: CallStore, ringing: Call
) -> None:
    assert await store.transition(ringing, accepted_by_bob(ringing))
    assert not await store.transition(ringing, domain.time_out(ringing, T0 + RING))
    stored = await store.get("c1")
    assert stored is not None and stored.state is CallState.ACCEPTED
    assert stored.accepted_by == "bob" and stored.receiver_name == "Bob"


async def test_every_final_state_frees_the_lines(store: CallStore) -> None:
    finishers: list[Callable[[Call], Call]] = [
        lambda c: domain.reject(c, "bob", "Bob", T0 + 1, "no"),
        lambda c: domain.time_out(c, T0 + RING),
        lambda c: domain.hang_up(c, "alice", T0 + 1),
        lambda c: domain.reject_by_system(c, RejectReason.OFFLINE, T0),
        lambda c: domain.drop_party(c, "bob", T0 + 1),
    ]
    for number, finish in enumerate(finishers):
        call = new_call(f"c{number}")
        assert await store.place(call)
        assert await store.transition(call, finish(call))
        assert await store.active_calls_of("alice") == []


async def test_a_call_refused_as_busy_is_recorded_for_the_history(store: CallStore) -> None:
    await store.place(new_call("c1", "alice", "bob"))
    busy = domain.reject_by_system(new_call("c2", "carol", "bob", T0 + 1), RejectReason.BUSY, T0)
    await store.record(busy)
    assert await store.get("c2") == busy
    assert [c.call_id for c in await store.active_calls_of("carol")] == []


async def test_history_is_newest_first_for_either_role(store: CallStore) -> None:
    for number, (caller, receiver) in enumerate(
        [("alice", "bob"), ("bob", "alice"), ("carol", "dave")]
    ):
        call = new_call(f"c{number}", caller, receiver, at=T0 + number)
        await store.place(call)
        await store.transition(call, domain.hang_up(call, caller, T0 + number))
    assert [c.call_id for c in await store.history("alice", 50)] == ["c1", "c0"]
    assert [c.call_id for c in await store.history("alice", 1)] == ["c1"]
    assert [c.call_id for c in await store.history("alice", 50, before=T0 + 1)] == ["c0"]
    assert [c.call_id for c in await store.history("dave", 50)] == ["c2"]


async def test_placed_from_finds_the_call_of_a_redelivered_initiate(store: CallStore) -> None:
    await store.place(new_call("c1", at=T0))
    found = await store.placed_from("alice", "bob", "k", since=T0 - RING)
    assert found is not None and found.call_id == "c1"
    assert await store.placed_from("alice", "bob", "other-connection", since=T0 - RING) is None
    assert await store.placed_from("alice", "bob", "k", since=T0 + 1) is None


async def test_the_calls_survive_a_restart(databases: Databases) -> None:
    url = databases.url("calls")
    first = CallStore(url)
    await first.start()
    await first.place(new_call("c1"))
    await first.close()
    second = CallStore(url)
    await second.start()
    try:
        stored = await second.get("c1")
        assert stored is not None and stored.state is CallState.RINGING
        assert not await second.place(new_call("c2", "carol", "bob"))
    finally:
        await second.close()


# -- two replicas on one file ----------------------------------------------------------------


async def test_two_replicas_accepting_at_once_write_exactly_one_accept(
    replicas: tuple[CallStore, CallStore],
) -> None:
    first, second = replicas
    for number in range(25):
        call = new_call(f"c{number}")
        assert await first.place(call)
        phone = domain.accept(call, "bob", "Bob", T0 + 1, {"device": "phone"})
        laptop = domain.accept(call, "bob", "Bob", T0 + 1, {"device": "laptop"})
        wins = await asyncio.gather(first.transition(call, phone), second.transition(call, laptop))
        assert sorted(wins) == [False, True]
        stored = await second.get(call.call_id)
        assert stored is not None
        winner = phone if wins[0] else laptop
        assert stored.accept_data == winner.accept_data
        await first.transition(stored, domain.hang_up(stored, "bob", T0 + 2))


async def test_two_replicas_placing_calls_to_one_receiver_let_one_ring(
    replicas: tuple[CallStore, CallStore],
) -> None:
    first, second = replicas
    for number in range(25):
        calls = [new_call(f"a{number}", "alice", "bob"), new_call(f"c{number}", "carol", "bob")]
        placed = await asyncio.gather(first.place(calls[0]), second.place(calls[1]))
        assert sorted(placed) == [False, True]
        ringing = calls[placed.index(True)]
        active = await first.active_calls_of("bob")
        assert [c.call_id for c in active] == [ringing.call_id]
        await second.transition(ringing, domain.hang_up(ringing, ringing.caller_id, T0 + 1))


async def test_text_with_nul_is_stored_and_found_as_it_was(store: CallStore) -> None:
    call = new_call("c\x00", "alice", "bob")
    assert await store.place(call)
    rejected = domain.reject(call, "bob", "B\x00b", T0 + 1, "no\x00")
    assert await store.transition(call, rejected)
    assert await store.get("c\x00") == rejected
    assert await store.get("c") is None
