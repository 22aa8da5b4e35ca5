"""The help store on a real database, SQLite and PostgreSQL: the first accept wins, decided
once, even when many accepts race through two stores (two replicas) sharing the database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from services.help.domain import Action, HelpRequest, MentorState, Status
from services.help.store import HelpStore
from shared.auth import Identity, Role
from shared.errors import Conflict
from tests.support.help_requests import help_request
from tests.support.postgres import Databases


def open_request(request_id: str = "r1", mentor_id: str | None = None) -> HelpRequest:
    return help_request(request_id, created_at=100.0, mentor_id=mentor_id)


@pytest.fixture
async def replicas(databases: Databases) -> AsyncIterator[tuple[HelpStore, HelpStore]]:
    url = databases.url("help")
    first, second = HelpStore(url), HelpStore(url)
    await asyncio.gather(first.start(), second.start())
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def make_available(store: HelpStore, *mentor_ids: str) -> None:
    for m in mentor_ids:
        state = MentorState(m, m.upper(), "available", True, "2026-01-01T00:00:00Z")
        await store.apply_mentor(state)


async def test_ten_simultaneous_accepts_across_two_replicas_have_one_winner(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    first, second = replicas
    mentors = [f"m{i}" for i in range(10)]
    await make_available(first, *mentors)
    request = open_request()
    assert sorted(await first.insert_request(request, [])) == sorted(mentors)

    async def accept(i: int) -> bool:
        store = (first, second)[i % 2]
        mentor = Identity(mentors[i], Role.MENTOR, mentors[i].upper())
        won, shown = await store.finish(request.moved(Action.ACCEPT, 200.0 + i, mentor))
        assert sorted(shown) == sorted(mentors)
        return won

    results = await asyncio.gather(*(accept(i) for i in range(10)))
    assert results.count(True) == 1
    winner = mentors[results.index(True)]
    stored = await second.get("r1")
    assert stored is not None and stored.status is Status.ACCEPTED
    assert stored.closed_by == winner


async def test_a_request_closes_once_whatever_races_it(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    first, second = replicas
    await make_available(first, "m1")
    request = open_request()
    await first.insert_request(request, [])
    mentor = Identity("m1", Role.MENTOR, "M1")
    student = Identity("s1", Role.STUDENT, "S1")
    outcomes = await asyncio.gather(
        first.finish(request.moved(Action.ACCEPT, 1.0, mentor)),
        second.finish(request.moved(Action.CANCEL, 1.0, student)),
        first.finish(request.moved(Action.EXPIRE, 1.0)),
        second.finish(request.moved(Action.ACCEPT, 1.0, mentor)),
    )
    assert [won for won, _ in outcomes].count(True) == 1
    stored = await first.get("r1")
    assert stored is not None and not stored.is_open


async def test_a_declined_broadcast_stays_open_and_is_hidden_from_the_decliner(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    store, _ = replicas
    await make_available(store, "m1", "m2")
    await store.insert_request(open_request(), [])
    assert await store.decline_broadcast("r1", "m1", 150.0)
    assert [r.request_id for r in await store.visible_to("m2")] == ["r1"]
    assert await store.visible_to("m1") == []
    assert await store.catch_up("m1", broadcasts=True, targeted=True, now=160.0) == []
    assert sorted(await store.shown_to("r1")) == ["m1", "m2"]


async def test_catch_up_records_who_was_shown(replicas: tuple[HelpStore, HelpStore]) -> None:
    store, _ = replicas
    await store.insert_request(open_request("b"), [])
    await store.insert_request(open_request("t", mentor_id="m7"), ["m7"])
    assert await store.shown_to("b") == []
    caught = await store.catch_up("m7", broadcasts=True, targeted=True, now=200.0)
    assert sorted(r.request_id for r in caught) == ["b", "t"]
    assert await store.shown_to("b") == ["m7"]
    again = await store.catch_up("m7", broadcasts=False, targeted=True, now=201.0)
    assert [r.request_id for r in again] == ["t"]


async def turn_available(store: HelpStore, state: MentorState) -> list[str]:
    """What reactions do when a mentor turns available: the view, then their catch-up."""
    await store.apply_mentor(state)
    caught = await store.catch_up(state.mentor_id, broadcasts=True, targeted=True, now=300.0)
    return [r.request_id for r in caught]


async def test_a_mentor_turning_available_during_a_broadcast_is_shown_it(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    """One replica stores a broadcast while the other stores a mentor turning available and
    catches them up: the mentor is in the broadcast's audience, or finds it in the catch-up."""
    first, second = replicas
    for number in range(15):
        mentor_id = f"m{number}"
        away = MentorState(mentor_id, "M", "busy", True, f"2026-01-01T00:00:{number:02}Z")
        await second.apply_mentor(away)
        back = MentorState(mentor_id, "M", "available", True, f"2026-01-01T00:01:{number:02}Z")
        audience, caught = await asyncio.gather(
            first.insert_request(open_request(f"r{number}"), []), turn_available(second, back)
        )
        assert mentor_id in audience or f"r{number}" in caught, (audience, caught)


async def test_a_request_closed_while_shown_is_closed_for_whoever_was_shown_it(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    """A close racing a catch-up on another replica: every mentor the catch-up showed the
    request to is among those the close tells."""
    first, second = replicas
    student = Identity("s1", Role.STUDENT, "S1")
    for number in range(15):
        request = open_request(f"r{number}")
        await first.insert_request(request, [])
        (won, told), caught = await asyncio.gather(
            first.finish(request.moved(Action.CANCEL, 1.0, student)),
            second.catch_up("m1", broadcasts=True, targeted=True, now=200.0),
        )
        assert won
        if request.request_id in [r.request_id for r in caught]:
            assert "m1" in told


async def test_text_with_nul_is_stored_and_found_as_it_was(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    store, _ = replicas
    odd = dataclasses.replace(open_request("r\x00"), subject="x\x00", message="\x00\ue000")
    await store.insert_request(odd, [])
    assert await store.get("r\x00") == odd
    assert await store.get("r") is None
    assert await store.find_duplicate(odd, since=0.0, any_status=False) == odd


async def test_replicas_racing_on_one_students_requests_keep_the_cap_and_store_a_double_tap_once(
    replicas: tuple[HelpStore, HelpStore],
) -> None:
    first, second = replicas
    distinct = [dataclasses.replace(open_request(f"r{i}"), subject=f"S{i}") for i in range(10)]
    outcomes = await asyncio.gather(
        *(
            (first if i % 2 else second).admit_request(r, [], max_open=5, duplicate_since=0.0)
            for i, r in enumerate(distinct)
        ),
        return_exceptions=True,
    )
    admitted = [o for o in outcomes if isinstance(o, tuple)]
    assert len(admitted) == 5 and all(shown is not None for _, shown in admitted)
    assert sum(isinstance(o, Conflict) for o in outcomes) == 5
    assert await first.open_count("s1") == 5

    other = dataclasses.replace(open_request("t1"), student_id="s2", subject="Physics")
    tapped = [other, dataclasses.replace(other, request_id="t2")]  # the same, sent twice
    (a, a_shown), (b, b_shown) = await asyncio.gather(
        first.admit_request(tapped[0], [], max_open=5, duplicate_since=0.0),
        second.admit_request(tapped[1], [], max_open=5, duplicate_since=0.0),
    )
    assert a.request_id == b.request_id  # one request; the other command found it
    assert [a_shown, b_shown].count(None) == 1
    assert await first.open_count("s2") == 1
