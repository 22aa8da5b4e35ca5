"""How a handler's pushes become broker messages: merged by frame, grouped by destination."""

from __future__ import annotations

from shared.runtime.outbox import (
    BroadcastPush,
    ConnectionPush,
    Followup,
    Outbox,
    Push,
    UserPush,
)
from shared.runtime.publisher import in_order_groups, merge_same_frames


def test_one_frame_to_two_users_is_one_message_with_the_exclusion_kept() -> None:
    out = Outbox()
    view = {"seq": 1}
    out.push_user("bob", "message_received", view)
    out.push_user("alice", "message_received", view, exclude_connection="alice-phone")
    merged = merge_same_frames(out.pushes)
    frame = {"event": "message_received", "data": view}
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
    everyone = BroadcastPush({"event": "5", "data": {}})
    groups = in_order_groups([first, to_carol, elsewhere, both, everyone])
    assert [first, to_carol, both] in groups
    assert [elsewhere] in groups and [everyone] in groups and len(groups) == 3
