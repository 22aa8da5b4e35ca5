"""Presence's handling of a gateway's batches of connections, on a real SQLite file (no broker):
who comes online, whose grace starts, and who gets a snapshot from presence."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.presence.domain import Mentor
from services.presence.handlers import GRACE_EXPIRED, PresenceHandlers
from services.presence.pacing import BroadcastPacer
from services.presence.store import PresenceStore, PresenceTx
from shared.auth import Identity, Role
from shared.protocol.domain import (
    CONNECTIONS_CHANGED,
    GATEWAY_HEARTBEAT,
    MENTOR_STATUS_CHANGED,
    USERS_OFFLINE,
    USERS_ONLINE,
)
from shared.runtime.outbox import (
    BroadcastPush,
    ConnectionClose,
    ConnectionPush,
    Request,
    UserSpread,
)
from shared.runtime.routes import validate
from shared.settings import Settings
from tests.support.postgres import Databases


@pytest.fixture
async def presence(databases: Databases) -> AsyncIterator[PresenceHandlers]:
    store = PresenceStore(databases.url("presence"))
    await store.start()
    yield PresenceHandlers(Settings(status_coalesce_ms=1, max_connections_per_user=3), store)
    await store.close()


@pytest.fixture
async def replicas(databases: Databases) -> AsyncIterator[list[PresenceHandlers]]:
    """Two presence processes on one database."""
    stores = [PresenceStore(databases.url("presence")) for _ in range(2)]
    await asyncio.gather(*(store.start() for store in stores))
    settings = Settings(status_coalesce_ms=1, max_connections_per_user=3)
    yield [PresenceHandlers(settings, store) for store in stores]
    for store in stores:
        await store.close()


def fact(connection_id: str, user_id: str, role: str = "student", **extra: Any) -> dict[str, Any]:
    return {
        "gateway_id": "g1",
        "connection_id": connection_id,
        "user_id": user_id,
        "role": role,
        "name": user_id.upper(),
        "reply_to": "g1.q",
        "at": 1.0,
        **extra,
    }


def graced(req: Request) -> list[str]:
    """The users whose reconnect grace ``req`` started."""
    return [user for timer in req.out.timers for user, _ in timer.data["users"]]


async def run(
    presence: PresenceHandlers,
    data: dict[str, Any],
    event: str = CONNECTIONS_CHANGED,
    user: Identity | None = None,
    redelivered: bool = False,
) -> Request:
    """Run the handler of ``event`` on ``data`` as the runner does (validated first)."""

    async def deliver_now(_: object) -> bool:
        return True

    route = presence.table()[event]
    payload = validate(route, data, user)
    req = Request(event, data, payload, user, None, redelivered, deliver_now)
    await route.handler(req)
    return req


async def test_a_batch_brings_its_users_online_and_presence_greets_only_those_not_greeted(
    presence: PresenceHandlers,
) -> None:
    req = await run(
        presence,
        {
            "opened": [
                fact("c1", "s1", snapshot_sent=True),
                fact("c2", "s1", snapshot_sent=True),  # the same user twice: online once
                fact("c3", "m1", role="mentor"),
            ]
        },
    )
    online = [f.data["users"] for f in req.out.facts if f.name == USERS_ONLINE]
    assert online == [[{"user_id": "s1", "role": "student"}, {"user_id": "m1", "role": "mentor"}]]
    assert [f.data["mentor_id"] for f in req.out.facts if f.name == MENTOR_STATUS_CHANGED] == ["m1"]
    assert any(isinstance(p, BroadcastPush) for p in req.out.pushes), "m1 came online"
    greeted = [p for p in req.out.pushes if isinstance(p, ConnectionPush)]
    assert [(p.connection_id, p.frame["event"]) for p in greeted] == [
        ("c3", "mentor_status_snapshot")
    ]
    assert greeted[0].frame["data"]["mentors"][0]["online"] is True


async def test_the_grace_starts_only_when_a_user_s_last_connection_closes(
    presence: PresenceHandlers,
) -> None:
    await run(presence, {"opened": [fact("c1", "s1"), fact("c2", "s1"), fact("c3", "s2")]})
    one_left = await run(presence, {"closed": [fact("c1", "s1")]})
    assert one_left.out.timers == []
    both_gone = await run(presence, {"closed": [fact("c2", "s1"), fact("c3", "s2")]})
    assert [t.event for t in both_gone.out.timers] == [GRACE_EXPIRED]  # one for the batch
    assert sorted(user for user, _ in both_gone.out.timers[0].data["users"]) == ["s1", "s2"]
    again = await run(presence, {"closed": [fact("c2", "s1")]})  # redelivered: nothing new
    assert again.out.timers == []


async def test_a_connection_opened_and_closed_within_one_batch_ends_closed(
    presence: PresenceHandlers,
) -> None:
    req = await run(presence, {"opened": [fact("c1", "s1")], "closed": [fact("c1", "s1")]})
    assert graced(req) == ["s1"]


async def test_a_heartbeat_closes_the_connections_its_gateway_no_longer_holds(
    presence: PresenceHandlers,
) -> None:
    await run(presence, {"opened": [fact("c1", "s1"), fact("c2", "s2")]})
    beat = {"gateway_id": "g1", "connection_ids": ["c2"], "at": 2.0}
    req = await run(presence, beat, event=GATEWAY_HEARTBEAT)
    assert graced(req) == ["s1"]


async def test_one_timer_takes_offline_those_of_its_users_still_without_a_connection(
    presence: PresenceHandlers,
) -> None:
    opened = [fact("c1", "s1"), fact("c2", "s2"), fact("c3", "m1", role="mentor")]
    await run(presence, {"opened": opened})
    closed = await run(presence, {"closed": opened})  # a gateway stopping: all at once
    [timer] = closed.out.timers
    await run(presence, {"opened": [fact("c4", "s2")]})  # s2 came back within the grace

    expired = await fire(presence, timer.data)
    [offline] = [f.data["users"] for f in expired.out.facts if f.name == USERS_OFFLINE]
    assert sorted(u["user_id"] for u in offline) == ["m1", "s1"]
    changed = [f.data for f in expired.out.facts if f.name == MENTOR_STATUS_CHANGED]
    assert [(m["mentor_id"], m["online"]) for m in changed] == [("m1", False)]
    again = await fire(presence, timer.data)  # redelivered: already offline, nothing new
    assert again.out.facts == [] and again.out.pushes == []


async def test_a_grace_timer_armed_one_user_at_a_time_still_fires(
    presence: PresenceHandlers,
) -> None:
    await run(presence, {"opened": [fact("c1", "s1")]})
    [timer] = (await run(presence, {"closed": [fact("c1", "s1")]})).out.timers
    [[user_id, generation]] = timer.data["users"]
    expired = await fire(presence, {"user_id": user_id, "generation": generation})
    assert [f.data["users"] for f in expired.out.facts if f.name == USERS_OFFLINE] == [
        [{"user_id": "s1", "role": "student"}]
    ]


async def fire(presence: PresenceHandlers, data: dict[str, Any]) -> Request:
    return await run(presence, data, GRACE_EXPIRED)


async def test_connections_past_the_cap_over_all_gateways_are_closed_newest_first(
    presence: PresenceHandlers,
) -> None:
    on_g1 = [fact(f"a{n}", "s1", at=float(n)) for n in range(2)]
    await run(presence, {"opened": on_g1})
    on_g2 = [{**fact(f"b{n}", "s1", at=10.0 + n), "gateway_id": "g2"} for n in range(3)]
    req = await run(presence, {"opened": [*on_g2, fact("c1", "s2")]})
    closes = [p for p in req.out.pushes if isinstance(p, ConnectionClose)]
    assert sorted((p.connection_id, p.code) for p in closes) == [("b1", 4429), ("b2", 4429)]
    greeted = {p.connection_id for p in req.out.pushes if isinstance(p, ConnectionPush)}
    assert greeted == {"b0", "c1"}, "no snapshot for a connection being closed"
    # the closes come back as closed facts: nothing left to forget, nobody's grace starts
    later = await run(presence, {"closed": [fact("b1", "s1"), fact("b2", "s1")]})
    assert later.out.timers == [] and later.out.pushes == []
    # within the cap again, a new connection is let be
    await run(presence, {"closed": [fact("a0", "s1")]})
    fine = await run(presence, {"opened": [fact("a9", "s1", at=30.0)]})
    assert not [p for p in fine.out.pushes if isinstance(p, ConnectionClose)]


def spreads(req: Request) -> list[tuple[str, str, int]]:
    return sorted(
        (p.reply_to, p.user_id, p.gateways) for p in req.out.pushes if isinstance(p, UserSpread)
    )


async def test_gateways_hear_over_how_many_gateways_a_user_is(
    presence: PresenceHandlers,
) -> None:
    alone = await run(presence, {"opened": [fact("a1", "s1"), fact("a2", "s1")]})
    assert spreads(alone) == [], "one gateway: nothing to tell (a storm costs no extra)"
    on_g2 = {**fact("b1", "s1"), "gateway_id": "g2"}
    both = await run(presence, {"opened": [on_g2]})
    queue = Settings().namespace + ".gateway."
    assert spreads(both) == [(queue + "g1", "s1", 2), (queue + "g2", "s1", 2)]
    back = await run(presence, {"closed": [on_g2]})
    assert spreads(back) == [(queue + "g1", "s1", 1)]


async def test_a_silent_gateway_s_connections_do_not_count_against_the_cap(
    presence: PresenceHandlers,
) -> None:
    """g1 was SIGKILLed: its sockets reconnect through g2 before presence expires g1."""
    await run(presence, {"opened": [fact(f"a{n}", "s1", at=float(n)) for n in range(3)]})
    await presence.store.write(lambda tx: tx.gateway_seen("g1", 0.0))  # silent since
    back = [{**fact(f"b{n}", "s1", at=10.0 + n), "gateway_id": "g2"} for n in range(3)]
    req = await run(presence, {"opened": back})
    assert not [p for p in req.out.pushes if isinstance(p, ConnectionClose)]


async def test_two_replicas_keep_the_cap_over_two_gateways_opening_at_once(
    replicas: list[PresenceHandlers],
) -> None:
    """Each replica alone would find the user within the cap: together they close one."""
    for number in range(10):
        user = f"s{number}"
        batches = [
            {"opened": [{**fact(f"{user}-{g}{n}", user), "gateway_id": g} for n in range(2)]}
            for g in ("g1", "g2")
        ]
        reqs = await asyncio.gather(*(run(r, b) for r, b in zip(replicas, batches, strict=True)))
        closed = [p for req in reqs for p in req.out.pushes if isinstance(p, ConnectionClose)]
        assert len(closed) == 1, user

        def counts_of(tx: PresenceTx, u: str = user) -> dict[str, int]:
            return tx.connection_counts([u])

        counts = await replicas[0].store.read(counts_of)
        assert counts == {user: 3}


async def test_a_status_message_with_nul_is_stored_as_it_was(presence: PresenceHandlers) -> None:
    mentor = Mentor("m1", "M\x00", status_message="back\x00soon\ue000")
    await presence.store.write(lambda tx: tx.save_mentor(mentor))
    assert await presence.store.read(lambda tx: tx.mentor("m1")) == mentor


async def test_status_changes_are_stamped_by_the_injected_clock(
    presence: PresenceHandlers,
) -> None:
    presence.clock = lambda: 1_800_000_000.0
    req = await run(presence, {"opened": [fact("c1", "m1", role="mentor")]})
    [changed] = [f.data for f in req.out.facts if f.name == MENTOR_STATUS_CHANGED]
    assert changed["updated_at"] == "2027-01-15T08:00:00.000Z"


async def test_a_redelivered_status_change_is_broadcast_again(presence: PresenceHandlers) -> None:
    """Its first run may have stored the change and then failed to publish it (the broker
    went away): the second finds nothing changed, yet students must still hear of it."""
    # each broadcast a minute after the one before: the pacing window never holds one back
    minutes = itertools.count(step=60.0)
    presence.pacer = BroadcastPacer(presence.pacer.window_s, clock=lambda: next(minutes))
    mentor = Identity("m1", Role.MENTOR, "M")
    busy = {"status": "busy", "status_message": "in a session"}
    first = await run(presence, busy, "mentor_busy", mentor)
    again = await run(presence, busy, "mentor_busy", mentor, redelivered=True)
    repeated = await run(presence, busy, "mentor_busy", mentor)  # sent twice by the client
    for req in (first, again):
        [push] = [p for p in req.out.pushes if isinstance(p, BroadcastPush)]
        assert push.frame["data"]["status_message"] == "in a session"
        assert [f.name for f in req.out.facts] == [MENTOR_STATUS_CHANGED]
    assert not [p for p in repeated.out.pushes if isinstance(p, BroadcastPush)]
