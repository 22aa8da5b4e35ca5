"""The help service's handlers against its real store (SQLite in tmp_path), without a broker.

A :class:`Harness` plays the runtime: it validates a client event like the runner does, runs
the handler, and records every push (published at once with ``deliver_now`` or left in the
outbox) as ``(recipient, event, data)``; a user push reaches only users marked connected.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.help.effects import EXPIRY_TIMER
from services.help.service import build
from shared.auth import Identity, Role
from shared.errors import RealtimeError
from shared.protocol.domain import CONNECTIONS_CHANGED, MENTOR_STATUS_CHANGED
from shared.protocol.envelope import CommandOrigin
from shared.runtime.outbox import BroadcastPush, ConnectionPush, Push, Request, Timer, UserPush
from shared.runtime.routes import MalformedWork, validate
from shared.runtime.service import ServiceDefinition
from shared.settings import Settings

EXPIRY_S = 60.0
DEAD_LETTERED = "dead-lettered"  # what the runner does with a malformed fact or timer
T0 = 1_800_000_000.0


@dataclass
class Outcome:
    reply: dict[str, Any] | None = None
    error: str | None = None
    pushes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    def to(self, recipient: str, event: str | None = None) -> list[dict[str, Any]]:
        return [d for r, e, d in self.pushes if r == recipient and (event is None or e == event)]

    def recipients(self, event: str) -> set[str]:
        return {r for r, e, _ in self.pushes if e == event}


class Harness:
    def __init__(self, definition: ServiceDefinition, clock: list[float]) -> None:
        self.definition = definition
        self.clock = clock
        self.connected: set[str] = set()
        self._statuses = itertools.count(1)

    def user(self, user_id: str) -> Identity:
        role = Role.MENTOR if user_id.startswith("m") else Role.STUDENT
        return Identity(user_id, role, user_id.upper())

    async def run(
        self,
        event: str,
        data: dict[str, Any] | None = None,
        user: str | None = None,
        redelivered: bool = False,
        command_id: str | None = None,
    ) -> Outcome:
        data = data or {}
        identity = self.user(user) if user else None
        outcome = Outcome()

        async def deliver_now(push: Push) -> bool:
            self._record(outcome, push)
            if isinstance(push, UserPush):
                return push.user_id in self.connected
            return True

        try:
            route = self.definition.handlers[event]
            payload = validate(route, data, identity)  # as the runner does
            origin = CommandOrigin(gateway_id="g", connection_id=f"c-{user}", reply_to="q")
            req = Request(
                event,
                data,
                payload,
                identity,
                origin if user else None,
                redelivered,
                deliver_now,
                command_id=command_id,
            )
            await route.handler(req)
        except RealtimeError as exc:
            outcome.error = str(exc.code)
            return outcome
        except MalformedWork:
            outcome.error = DEAD_LETTERED
            return outcome
        outcome.reply = req.out.reply or {}
        for push in req.out.pushes:
            self._record(outcome, push)
        outcome.timers = list(req.out.timers)
        outcome.facts = [f.name for f in req.out.facts]
        return outcome

    @staticmethod
    def _record(outcome: Outcome, push: Push) -> None:
        if isinstance(push, UserPush):
            outcome.pushes.append((push.user_id, push.frame["event"], push.frame["data"]))
        elif isinstance(push, ConnectionPush):
            outcome.pushes.append((push.connection_id, push.frame["event"], push.frame["data"]))
        else:
            assert isinstance(push, BroadcastPush), push
            outcome.pushes.append(("*", push.frame["event"], push.frame["data"]))

    # -- facts the service follows ------------------------------------------------------------

    async def status(
        self,
        mentor_id: str,
        status: str = "available",
        online: bool = True,
        redelivered: bool = False,
    ) -> Outcome:
        view = {
            "mentor_id": mentor_id,
            "name": mentor_id.upper(),
            "status": status if online else "offline",
            "status_message": None,
            "status_data": None,
            "online": online,
            "updated_at": f"2026-01-01T00:00:{next(self._statuses):06.3f}Z",
        }
        return await self.run(MENTOR_STATUS_CHANGED, view, redelivered=redelivered)

    async def connects(self, user_id: str, connection_id: str, resumed: bool = False) -> Outcome:
        self.connected.add(user_id)
        fact = {
            "gateway_id": "g",
            "connection_id": connection_id,
            "user_id": user_id,
            "role": self.user(user_id).role.value,
            "name": user_id.upper(),
            "reply_to": "q",
            "at": self.clock[0],
            "resumed": resumed,
        }
        return await self.run(CONNECTIONS_CHANGED, {"opened": [fact]})

    async def online(self, *mentor_ids: str, status: str = "available") -> None:
        for m in mentor_ids:
            self.connected.add(m)
            await self.status(m, status)

    async def ask(self, user: str = "s1", **data: Any) -> Outcome:
        data.setdefault("subject", "Math")
        data.setdefault("message", "help me")
        return await self.run("student_request_help", data, user)

    async def fire_expiry(self, outcome: Outcome, redelivered: bool = False) -> Outcome:
        (timer,) = [t for t in outcome.timers if t.event == EXPIRY_TIMER]
        return await self.run(EXPIRY_TIMER, timer.data, redelivered=redelivered)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = [T0]
    settings = Settings(data_dir=tmp_path, help_expiry_s=EXPIRY_S)
    definition = build(settings, clock=lambda: clock[0])
    assert definition.startup is not None and definition.shutdown is not None
    await definition.startup()
    try:
        yield Harness(definition, clock)
    finally:
        await definition.shutdown()


# -- student_request_help -------------------------------------------------------------------


async def test_a_broadcast_reaches_every_online_available_mentor(h: Harness) -> None:
    await h.online("m1", "m2", "m3")
    await h.online("m4", status="busy")
    await h.status("m5", online=False)
    out = await h.ask(urgency="high")
    assert out.error is None and out.reply is not None
    assert out.reply["status"] == "open" and out.reply["delivered_to"] == 3
    assert out.recipients("help_request_received") == {"m1", "m2", "m3"}
    (pushed,) = out.to("m1", "help_request_received")
    assert pushed["request_id"] == out.reply["request_id"]
    assert pushed["urgency"] == "high" and pushed["mentor_id"] is None
    assert pushed["student_id"] == "s1" and pushed["student_name"] == "S1"
    assert pushed["expires_at"] == out.reply["expires_at"]
    (timer,) = out.timers
    assert timer.event == EXPIRY_TIMER and timer.delay_s == EXPIRY_S
    assert timer.data == {"request_id": out.reply["request_id"]}


async def test_delivered_to_counts_mentors_actually_connected(h: Harness) -> None:
    await h.online("m1", "m2")
    h.connected.discard("m2")  # presence still says online (reconnect grace)
    out = await h.ask()
    assert out.reply is not None and out.reply["delivered_to"] == 1


async def test_a_broadcast_with_nobody_available_is_still_open(h: Harness) -> None:
    out = await h.ask()
    assert out.reply is not None and out.reply["delivered_to"] == 0
    listed = await h.run("list_help_requests", {}, "s1")
    assert listed.reply is not None
    assert [r["status"] for r in listed.reply["requests"]] == ["open"]


async def test_a_targeted_request_goes_to_its_mentor_even_when_busy(h: Harness) -> None:
    await h.online("m1", status="busy")
    await h.online("m2")
    out = await h.ask(mentor_id="m1")
    assert out.reply is not None and out.reply["delivered_to"] == 1
    assert out.recipients("help_request_received") == {"m1"}
    assert out.to("m1")[0]["mentor_id"] == "m1"


async def test_a_targeted_request_to_an_offline_mentor_waits_for_their_connection(
    h: Harness,
) -> None:
    await h.status("m1", online=False)
    out = await h.ask(mentor_id="m1")
    assert out.reply is not None and out.reply["delivered_to"] == 0
    opened = await h.connects("m1", "conn-7")
    assert [d["request_id"] for d in opened.to("conn-7", "help_request_received")] == [
        out.reply["request_id"]
    ]
    # Their view says offline still: broadcasts come with the status fact, not here.
    assert opened.recipients("help_request_received") == {"conn-7"}


async def test_unknown_target_mentor_is_not_found(h: Harness) -> None:
    assert (await h.ask(mentor_id="ghost")).error == "not_found"


async def test_a_mentor_may_not_ask_for_help(h: Harness) -> None:
    assert (await h.ask(user="m1")).error == "forbidden"


@pytest.mark.parametrize(
    "data",
    [
        {"subject": "", "message": "x"},
        {"subject": "x" * 101, "message": "x"},
        {"subject": "Math", "message": ""},
        {"subject": "Math", "message": "x" * 2001},
        {"subject": "Math", "message": "   "},
        {"subject": "Math", "message": "x", "urgency": "urgent"},
        {"subject": "Math", "message": "x", "mentor_id": "not a valid id!"},
        {"subject": 5, "message": "x"},
        {"message": "x"},
    ],
)
async def test_invalid_requests(h: Harness, data: dict[str, Any]) -> None:
    assert (await h.run("student_request_help", data, "s1")).error == "invalid_payload"


async def test_the_same_request_sent_twice_is_one_request(h: Harness) -> None:
    await h.online("m1")
    first = await h.ask()
    again = await h.ask()
    assert first.reply is not None and again.reply is not None
    assert again.reply["request_id"] == first.reply["request_id"]
    assert again.pushes == [] and again.timers == []
    other = await h.ask(message="something else")
    assert other.reply is not None and other.reply["request_id"] != first.reply["request_id"]


async def test_a_redelivered_command_is_the_same_request_whatever_the_time(h: Harness) -> None:
    await h.online("m1")
    data = {"subject": "Math", "message": "help me"}
    first = await h.run("student_request_help", data, "s1", command_id="cmd-1")
    h.clock[0] += 10 * 60  # far beyond the double-tap window
    again = await h.run("student_request_help", data, "s1", redelivered=True, command_id="cmd-1")
    fresh = await h.run("student_request_help", data, "s1", command_id="cmd-2")
    assert first.reply is not None and again.reply is not None and fresh.reply is not None
    assert again.reply["request_id"] == first.reply["request_id"]
    assert fresh.reply["request_id"] != first.reply["request_id"]


async def test_a_redelivered_request_pushes_and_arms_the_timer_again(h: Harness) -> None:
    await h.online("m1")
    first = await h.ask()
    h.clock[0] += 5
    retried = await h.run(
        "student_request_help", {"subject": "Math", "message": "help me"}, "s1", redelivered=True
    )
    assert first.reply is not None and retried.reply is not None
    assert retried.reply["request_id"] == first.reply["request_id"]
    assert retried.recipients("help_request_received") == {"m1"}
    (timer,) = retried.timers
    assert timer.delay_s == pytest.approx(EXPIRY_S - 5)


# -- mentors becoming available -------------------------------------------------------------


async def test_a_mentor_who_becomes_available_gets_open_broadcasts_most_urgent_first(
    h: Harness,
) -> None:
    ids = {}
    for urgency in ("low", "high", "medium", "high"):
        h.clock[0] += 1
        out = await h.ask(urgency=urgency, message=f"{urgency} at {h.clock[0]}")
        assert out.reply is not None
        ids[out.reply["request_id"]] = urgency
    await h.status("m9", online=False)
    await h.ask(mentor_id="m9", message="targeted, not a broadcast")
    h.connected.add("m9")
    became = await h.status("m9")
    pushed = became.to("m9", "help_request_received")
    assert [ids[p["request_id"]] for p in pushed] == ["high", "high", "medium", "low"]
    assert pushed[0]["created_at"] < pushed[1]["created_at"]
    # No second copy while they stay available, nor after a quick busy spell (flapping);
    # again once IM_HELP_REPUSH_AFTER_S (60 s) passed since they were shown.
    assert (await h.status("m9")).pushes == []
    assert (await h.status("m9", status="busy")).pushes == []
    assert (await h.status("m9")).to("m9", "help_request_received") == []
    await h.status("m9", status="busy")
    h.clock[0] += 61
    assert len((await h.status("m9")).to("m9", "help_request_received")) == 4


async def test_a_flapping_mentor_is_pushed_only_what_they_have_not_seen(h: Harness) -> None:
    await h.ask(message="first")
    await h.online("m1")
    for _ in range(20):  # busy / available, over and over
        await h.status("m1", status="busy")
        assert (await h.status("m1")).to("m1", "help_request_received") == []
    await h.status("m1", status="busy")
    h.clock[0] += 1
    await h.ask(message="while busy")  # not shown to m1: a busy mentor is not offered it
    back = await h.status("m1")
    assert [p["message"] for p in back.to("m1", "help_request_received")] == ["while busy"]


async def test_a_redelivered_status_fact_pushes_again(h: Harness) -> None:
    await h.ask()
    await h.online("m1")
    again = await h.status("m1", redelivered=True)
    assert len(again.to("m1", "help_request_received")) == 1


async def test_a_stale_status_fact_is_ignored(h: Harness) -> None:
    await h.online("m1", status="busy")
    stale = {
        "mentor_id": "m1",
        "name": "M1",
        "status": "available",
        "status_message": None,
        "status_data": None,
        "online": True,
        "updated_at": "2000-01-01T00:00:00.000Z",
    }
    await h.run(MENTOR_STATUS_CHANGED, stale)
    out = await h.ask()
    assert out.reply is not None and out.reply["delivered_to"] == 0


async def test_a_malformed_fact_is_dead_lettered(h: Harness) -> None:
    out = await h.run(MENTOR_STATUS_CHANGED, {"mentor_id": "m1"})
    assert out.error == DEAD_LETTERED and out.pushes == []
    assert (await h.ask(mentor_id="m1")).error == "not_found"


async def test_an_available_mentor_connecting_again_gets_open_requests_on_that_connection(
    h: Harness,
) -> None:
    await h.online("m1")
    broadcast = await h.ask(urgency="low")
    targeted = await h.ask(mentor_id="m1", urgency="high", message="just you")
    student_conn = await h.connects("s1", "conn-s")
    assert student_conn.pushes == []
    opened = await h.connects("m1", "laptop")
    assert broadcast.reply is not None and targeted.reply is not None
    assert [d["request_id"] for d in opened.to("laptop")] == [
        targeted.reply["request_id"],
        broadcast.reply["request_id"],
    ]
    # Re-announced after a broker reconnect: that connection has them already.
    assert (await h.connects("m1", "laptop", resumed=True)).pushes == []


# -- accept: first one wins -----------------------------------------------------------------


async def test_first_accept_wins_the_others_are_told_and_late_accepts_conflict(
    h: Harness,
) -> None:
    await h.online("m1", "m2", "m3")
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    won = await h.run("accept_help_request", {"request_id": rid}, "m2")
    assert won.reply == {"request_id": rid, "status": "accepted"}
    assert won.to("s1", "help_request_accepted") == [
        {"request_id": rid, "mentor_id": "m2", "mentor_name": "M2"}
    ]
    assert won.recipients("help_request_closed") == {"m1", "m3"}
    assert won.to("m1", "help_request_closed") == [{"request_id": rid, "reason": "accepted"}]
    for late in ("m1", "m3", "m2"):
        assert (await h.run("accept_help_request", {"request_id": rid}, late)).error == "conflict"
    mine = await h.run("list_help_requests", {}, "s1")
    assert mine.reply is not None and mine.reply["requests"][0]["status"] == "accepted"
    assert (await h.run("list_help_requests", {}, "m1")).reply == {"requests": []}


async def test_a_redelivered_winning_accept_is_answered_again(h: Harness) -> None:
    await h.online("m1", "m2")
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    await h.run("accept_help_request", {"request_id": rid}, "m1")
    again = await h.run("accept_help_request", {"request_id": rid}, "m1", redelivered=True)
    assert again.reply == {"request_id": rid, "status": "accepted"}
    assert again.recipients("help_request_accepted") == {"s1"}
    loser = await h.run("accept_help_request", {"request_id": rid}, "m2", redelivered=True)
    assert loser.error == "conflict"


async def test_a_mentor_who_became_available_later_is_told_of_the_close(h: Harness) -> None:
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    await h.online("m1", "m2")
    won = await h.run("accept_help_request", {"request_id": rid}, "m1")
    assert won.recipients("help_request_closed") == {"m2"}


async def test_accept_errors(h: Harness) -> None:
    await h.online("m1", "m2")
    rid = (await h.ask(mentor_id="m1")).reply["request_id"]  # type: ignore[index]
    assert (await h.run("accept_help_request", {"request_id": rid}, "m2")).error == "not_found"
    assert (await h.run("accept_help_request", {"request_id": "nope"}, "m1")).error == "not_found"
    assert (await h.run("accept_help_request", {"request_id": rid}, "s1")).error == "forbidden"
    assert (await h.run("accept_help_request", {}, "m1")).error == "invalid_payload"
    assert (await h.run("accept_help_request", {"request_id": ""}, "m1")).error == "invalid_payload"
    ok = await h.run("accept_help_request", {"request_id": rid}, "m1")
    assert ok.reply is not None and ok.recipients("help_request_closed") == set()


# -- cancel ---------------------------------------------------------------------------------


async def test_cancel_closes_for_every_mentor_shown_it(h: Harness) -> None:
    await h.online("m1", "m2")
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    out = await h.run("cancel_help_request", {"request_id": rid}, "s1")
    assert out.reply == {"request_id": rid, "status": "cancelled"}
    assert out.recipients("help_request_closed") == {"m1", "m2"}
    assert out.to("m2") == [{"request_id": rid, "reason": "cancelled"}]
    assert (await h.run("accept_help_request", {"request_id": rid}, "m1")).error == "conflict"
    again = await h.run("cancel_help_request", {"request_id": rid}, "s1")
    assert again.reply == {"request_id": rid, "status": "cancelled"} and again.pushes == []


async def test_cancel_errors(h: Harness) -> None:
    await h.online("m1")
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    assert (await h.run("cancel_help_request", {"request_id": rid}, "s2")).error == "not_found"
    assert (await h.run("cancel_help_request", {"request_id": rid}, "m1")).error == "forbidden"
    assert (await h.run("cancel_help_request", {"request_id": "x"}, "s1")).error == "not_found"
    await h.run("accept_help_request", {"request_id": rid}, "m1")
    assert (await h.run("cancel_help_request", {"request_id": rid}, "s1")).error == "conflict"


# -- decline --------------------------------------------------------------------------------


async def test_declining_a_targeted_request_tells_the_student_and_closes_it(h: Harness) -> None:
    await h.online("m1")
    rid = (await h.ask(mentor_id="m1")).reply["request_id"]  # type: ignore[index]
    out = await h.run("decline_help_request", {"request_id": rid, "reason": "in class"}, "m1")
    assert out.reply == {"request_id": rid}
    assert out.to("s1", "help_request_declined") == [
        {"request_id": rid, "mentor_id": "m1", "reason": "in class"}
    ]
    mine = await h.run("list_help_requests", {}, "s1")
    assert mine.reply is not None and mine.reply["requests"][0]["status"] == "declined"
    assert (await h.run("accept_help_request", {"request_id": rid}, "m1")).error == "conflict"
    again = await h.run("decline_help_request", {"request_id": rid}, "m1")
    assert again.reply == {"request_id": rid} and again.pushes == []
    assert (await h.run("cancel_help_request", {"request_id": rid}, "s1")).error == "conflict"


async def test_declining_a_broadcast_hides_it_from_that_mentor_only(h: Harness) -> None:
    await h.online("m1", "m2")
    rid = (await h.ask()).reply["request_id"]  # type: ignore[index]
    out = await h.run("decline_help_request", {"request_id": rid}, "m1")
    assert out.reply == {"request_id": rid} and out.pushes == []
    m1 = await h.run("list_help_requests", {}, "m1")
    m2 = await h.run("list_help_requests", {}, "m2")
    assert m1.reply == {"requests": []}
    assert m2.reply is not None and [r["request_id"] for r in m2.reply["requests"]] == [rid]
    # Not pushed to them again when they come back.
    await h.status("m1", status="busy")
    assert (await h.status("m1")).pushes == []
    assert (await h.connects("m1", "phone")).pushes == []
    # Still open for the others; the decliner is told of the close like everyone shown it.
    won = await h.run("accept_help_request", {"request_id": rid}, "m2")
    assert won.recipients("help_request_closed") == {"m1"}


async def test_decline_errors(h: Harness) -> None:
    await h.online("m1", "m2")
    rid = (await h.ask(mentor_id="m1")).reply["request_id"]  # type: ignore[index]
    assert (await h.run("decline_help_request", {"request_id": rid}, "m2")).error == "not_found"
    assert (await h.run("decline_help_request", {"request_id": rid}, "s1")).error == "forbidden"
    long_reason = {"request_id": rid, "reason": "x" * 201}
    assert (await h.run("decline_help_request", long_reason, "m1")).error == "invalid_payload"
    bid = (await h.ask(message="broadcast")).reply["request_id"]  # type: ignore[index]
    await h.run("cancel_help_request", {"request_id": bid}, "s1")
    assert (await h.run("decline_help_request", {"request_id": bid}, "m2")).error == "conflict"


# -- expiry ---------------------------------------------------------------------------------


async def test_expiry_tells_the_student_and_every_mentor_shown_it(h: Harness) -> None:
    await h.online("m1", "m2")
    asked = await h.ask()
    rid = asked.reply["request_id"]  # type: ignore[index]
    h.clock[0] += EXPIRY_S
    out = await h.fire_expiry(asked)
    assert out.to("s1") == [{"request_id": rid}]
    assert out.recipients("help_request_expired") == {"s1"}
    assert out.recipients("help_request_closed") == {"m1", "m2"}
    assert out.to("m1") == [{"request_id": rid, "reason": "expired"}]
    assert (await h.run("accept_help_request", {"request_id": rid}, "m1")).error == "conflict"
    # Fired again (a second timer): nothing more; redelivered: told again.
    assert (await h.fire_expiry(asked)).pushes == []
    assert (await h.fire_expiry(asked, redelivered=True)).recipients("help_request_expired") == {
        "s1"
    }


async def test_an_early_timer_is_rearmed_for_the_rest(h: Harness) -> None:
    asked = await h.ask()
    h.clock[0] += EXPIRY_S - 3
    early = await h.fire_expiry(asked)
    assert early.pushes == []
    (timer,) = early.timers
    assert 2 <= timer.delay_s <= 3
    h.clock[0] += 3
    assert (await h.fire_expiry(early)).recipients("help_request_expired") == {"s1"}


async def test_an_accepted_request_does_not_expire(h: Harness) -> None:
    await h.online("m1")
    asked = await h.ask()
    await h.run("accept_help_request", {"request_id": asked.reply["request_id"]}, "m1")  # type: ignore[index]
    h.clock[0] += EXPIRY_S
    assert (await h.fire_expiry(asked)).pushes == []


async def test_a_malformed_timer_is_dead_lettered(h: Harness) -> None:
    out = await h.run(EXPIRY_TIMER, {"nope": 1})
    assert out.error == DEAD_LETTERED and out.pushes == []


# -- list_help_requests, templates ----------------------------------------------------------


async def test_lists(h: Harness) -> None:
    await h.online("m1", "m2")
    low = (await h.ask(urgency="low", message="a")).reply["request_id"]  # type: ignore[index]
    h.clock[0] += 1
    high = (await h.ask(urgency="high", message="b")).reply["request_id"]  # type: ignore[index]
    h.clock[0] += 1
    mine = (await h.ask(mentor_id="m2", message="c")).reply["request_id"]  # type: ignore[index]
    h.clock[0] += 1
    other = (await h.ask(user="s2", message="d")).reply["request_id"]  # type: ignore[index]
    m1 = await h.run("list_help_requests", {}, "m1")
    m2 = await h.run("list_help_requests", {}, "m2")
    s1 = await h.run("list_help_requests", {}, "s1")
    assert [r["request_id"] for r in m1.reply["requests"]] == [high, other, low]  # type: ignore[index]
    assert [r["request_id"] for r in m2.reply["requests"]] == [high, mine, other, low]  # type: ignore[index]
    assert [r["request_id"] for r in s1.reply["requests"]] == [mine, high, low]  # type: ignore[index]
    assert set(s1.reply["requests"][0]) == {  # type: ignore[index]
        "request_id",
        "student_id",
        "student_name",
        "subject",
        "message",
        "urgency",
        "mentor_id",
        "status",
        "created_at",
        "expires_at",
    }


async def test_a_student_has_at_most_five_open_requests(h: Harness) -> None:
    await h.online("m1")
    opened = [await h.ask(message=f"question {i}") for i in range(5)]
    assert all(o.error is None for o in opened)
    refused = await h.ask(message="one more")
    assert refused.error == "conflict" and not refused.pushes
    assert (await h.ask(user="s2", message="mine")).error is None  # others are not affected
    first = opened[0].reply
    assert first is not None
    cancelled = await h.run("cancel_help_request", {"request_id": first["request_id"]}, "s1")
    assert cancelled.error is None
    assert (await h.ask(message="one more")).error is None  # room again
