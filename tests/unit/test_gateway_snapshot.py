"""The gateway's cache of mentor statuses (what presence broadcast)."""

from __future__ import annotations

from typing import Any

from services.gateway.snapshot import MentorSnapshot
from shared.protocol.envelope import dumps, loads


def view(
    mentor_id: str, status: str, at: str, name: str = "", online: bool = True
) -> dict[str, Any]:
    return {
        "mentor_id": mentor_id,
        "name": name or mentor_id.upper(),
        "status": status,
        "status_message": None,
        "status_data": None,
        "online": online,
        "updated_at": at,
    }


def mentors(snapshot: MentorSnapshot) -> list[tuple[str, str]]:
    frame = snapshot.frame()
    assert frame is not None
    decoded = loads(frame)
    assert decoded["event"] == "mentor_status_snapshot"
    return [(m["mentor_id"], m["status"]) for m in decoded["data"]["mentors"]]


def update(data: dict[str, Any]) -> str:
    return dumps({"event": "mentor_status_update", "data": data})


def test_nothing_is_served_until_presence_s_list_is_loaded() -> None:
    snapshot = MentorSnapshot()
    snapshot.observe_frame(update(view("m1", "busy", "2026-12-01T10:00:00.000Z")))
    assert snapshot.frame() is None
    snapshot.load([view("m2", "available", "2026-12-01T09:00:00.000Z")])
    assert mentors(snapshot) == [("m2", "available"), ("m1", "busy")]


def test_a_broadcast_seen_before_the_load_is_not_overwritten_by_an_older_list() -> None:
    snapshot = MentorSnapshot()
    snapshot.observe_frame(update(view("m1", "busy", "2026-12-01T10:00:01.000Z")))
    snapshot.load([view("m1", "available", "2026-12-01T10:00:00.000Z")])
    assert mentors(snapshot) == [("m1", "busy")]


def test_updates_replace_older_views_only_and_the_frame_follows() -> None:
    snapshot = MentorSnapshot()
    snapshot.load([view("m1", "available", "2026-12-01T10:00:00.000Z")])
    first = snapshot.frame()
    assert snapshot.frame() is first, "serialized once per change"
    snapshot.observe_frame(update(view("m1", "break", "2026-12-01T10:00:02.000Z")))
    snapshot.observe_frame(update(view("m1", "busy", "2026-12-01T10:00:01.000Z")))  # stale
    assert mentors(snapshot) == [("m1", "break")]


def test_other_broadcasts_are_ignored_and_a_reconnect_invalidates() -> None:
    snapshot = MentorSnapshot()
    snapshot.load([])
    snapshot.observe_frame(dumps({"event": "help_request_received", "data": {"x": 1}}))
    assert mentors(snapshot) == []
    snapshot.invalidate()
    assert snapshot.frame() is None


def test_the_listing_order_is_presence_s_online_and_available_first() -> None:
    snapshot = MentorSnapshot()
    snapshot.load(
        [
            view("m1", "offline", "2026-12-01T10:00:00.000Z", "Ann", online=False),
            view("m2", "busy", "2026-12-01T10:00:00.000Z", "Bob"),
            view("m3", "available", "2026-12-01T10:00:00.000Z", "Zoe"),
        ]
    )
    assert mentors(snapshot) == [("m3", "available"), ("m2", "busy"), ("m1", "offline")]


def test_a_snapshot_of_many_mentors_with_large_status_data_fits_one_frame() -> None:
    snapshot = MentorSnapshot()
    big = {"bio": "x" * 4000}
    views = []
    for i in range(120):  # 120 × 4 KiB of status_data: more than one frame may carry
        online = i % 2 == 0
        one = view(f"m{i:03}", "available" if online else "offline", "2026-12-01T10:00:00.000Z")
        views.append({**one, "online": online, "status_data": big})
    snapshot.load(views)
    frame = snapshot.frame()
    assert frame is not None and len(frame.encode()) <= 256 * 1024
    shown = loads(frame)["data"]["mentors"]
    assert 50 < len(shown) < 120
    assert all(m["online"] for m in shown[:60]), "the online ones come first and are kept"
