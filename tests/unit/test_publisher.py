"""How a handler's pushes become broker messages: merged by frame, grouped by destination."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from shared.amqp.broker import Broker
from shared.amqp.topology import DELAY_QUEUE_GENERATION_S, DELAY_QUEUE_SPARE_MS, Topology
from shared.protocol.envelope import Reply
from shared.runtime.outbox import (
    BroadcastPush,
    ConnectionPush,
    Followup,
    Outbox,
    Push,
    UserPush,
)
from shared.runtime.publisher import Outcome, Publisher
from shared.runtime.push_order import in_order_groups, merge_same_frames
from tests.support.runtime import FakeBroker, Note


def test_one_frame_to_two_users_is_one_message_with_the_exclusion_kept() -> None:
    out = Outbox()
    view = Note(seq=1)
    out.push_user("bob", view)
    out.push_user("alice", view, exclude_connection="alice-phone")
    merged = merge_same_frames(out.pushes)
    frame = {"event": "note", "data": {"id": None, "seq": 1}}
    assert merged == [UserPush("bob", frame, "alice-phone", also_to=("alice",))]


def test_different_frames_or_followups_stay_apart() -> None:
    a, b = {"event": "a", "data": {}}, {"event": "a", "data": {}}  # equal, not the same
    assert len(merge_same_frames([UserPush("u1", a), UserPush("u2", b)])) == 2
    typing = {"event": "user_typing", "data": {}}
    pushes: list[Push] = [
        UserPush("u1", typing, followup=Followup("k", 6, {"event": "x"})),
        UserPush("u2", typing),
    ]
    assert len(merge_same_frames(pushes)) == 2


def test_two_exclusions_cannot_merge() -> None:
    view = {"event": "e", "data": {}}
    pushes: list[Push] = [UserPush("u1", view, "c1"), UserPush("u2", view, "c2")]
    assert merge_same_frames(pushes) == pushes


def test_pushes_sharing_a_destination_stay_in_order_in_one_group() -> None:
    first = UserPush("bob", {"event": "1", "data": {}})
    to_carol = UserPush("carol", {"event": "2", "data": {}})
    both = UserPush("dave", {"event": "3", "data": {}}, also_to=("bob", "carol"))
    elsewhere = ConnectionPush("q", "c9", {"event": "4", "data": {}})
    groups = in_order_groups([first, to_carol, elsewhere, both])
    assert groups == [[first, to_carol, both], [elsewhere]]


def test_a_broadcast_is_ordered_after_everything_before_it_and_before_what_follows() -> None:
    to_maya = UserPush("maya", {"event": "1", "data": {}})
    everyone = BroadcastPush({"event": "2", "data": {}})
    to_maya_again = UserPush("maya", {"event": "3", "data": {}})
    other = UserPush("bob", {"event": "4", "data": {}})
    (group,) = in_order_groups([to_maya, everyone, to_maya_again, other])
    assert group.index(to_maya) < group.index(everyone) < group.index(to_maya_again)


class RecordingBroker:
    def __init__(self) -> None:
        self.declared: list[tuple[int, int]] = []
        self.published: list[str] = []

    async def declare_delay_queue(self, service: str, delay_ms: int, generation: int) -> str:
        self.declared.append((delay_ms, generation))
        return Topology("im").delay_queue(service, delay_ms, generation)

    async def publish(self, exchange: str, routing_key: str, body: bytes, **_: object) -> bool:
        self.published.append(routing_key)
        return True


async def test_timers_go_to_a_new_delay_queue_every_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [DELAY_QUEUE_GENERATION_S * 1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    broker = RecordingBroker()
    timers = Publisher(cast(Broker, cast(Any, broker)), "help")
    await timers.timer("expire", {}, 900)
    clock[0] += DELAY_QUEUE_GENERATION_S - 1
    await timers.timer("expire", {}, 900)
    assert broker.declared == [(900_000, 1000)]  # remembered within a generation...
    clock[0] += 1
    await timers.timer("expire", {}, 900)
    assert broker.declared == [(900_000, 1000), (900_000, 1001)]  # ...a new queue after it
    assert broker.published == ["im.delay.help.900000.g1000"] * 2 + ["im.delay.help.900000.g1001"]


def test_a_delay_queue_outlives_the_last_timer_of_its_generation() -> None:
    arguments = Topology("im").delay_queue_arguments("help", 900_000)
    assert arguments["x-queue-type"] == "quorum"  # replicated: survives the loss of a node
    # created at the start of its generation at the latest, its last timer set at the end
    last_fires_ms = DELAY_QUEUE_GENERATION_S * 1000 + arguments["x-message-ttl"]
    assert arguments["x-expires"] >= last_fires_ms + DELAY_QUEUE_SPARE_MS


async def test_a_bundle_marks_the_pushes_of_a_command_run_again() -> None:
    broker = FakeBroker()
    bundles = Publisher(cast(Broker, cast(Any, broker)), "chat")
    fresh, again = Outbox(), Outbox()
    fresh.push_user("bob", Note(seq=2))
    again.push_user("bob", Note(seq=1))
    ok = Reply(ok=True, data={})
    await bundles.bundle(
        [Outcome(again, ok, "gw.q", "c1", repeat=True), Outcome(fresh, ok, "gw.q", "c2")]
    )
    [message] = broker.published
    entries = cast(list[dict[str, Any]], message.body)
    assert [("repeat" in e, "frame" in e) for e in entries] == [(True, True), (False, True)]
