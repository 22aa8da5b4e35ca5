"""The gateway's memory of the push frames it delivered lately (pure, with a fake clock)."""

from __future__ import annotations

from services.gateway.repeats import RecentFrames
from tests.support.clock import FakeClock


def test_a_frame_is_known_once_delivered_and_for_the_window_only() -> None:
    clock = FakeClock()
    recent = RecentFrames(window_s=60, capacity=100, clock=clock)
    assert not recent.delivered('{"event":"a"}')
    recent.note('{"event":"a"}')
    assert recent.delivered('{"event":"a"}')
    assert not recent.delivered('{"event":"b"}'), "another frame is not"
    clock.t = 60.0
    assert recent.delivered('{"event":"a"}')
    clock.t = 60.5
    assert not recent.delivered('{"event":"a"}'), "older than the window"


def test_old_frames_are_forgotten_as_new_ones_come() -> None:
    clock = FakeClock()
    recent = RecentFrames(window_s=10, capacity=100, clock=clock)
    for i in range(50):
        recent.note(f"old {i}")
    clock.t = 11.0
    recent.note("new")
    assert len(recent) == 1 and recent.delivered("new")


def test_the_memory_keeps_at_most_its_capacity_the_newest() -> None:
    recent = RecentFrames(window_s=60, capacity=3, clock=FakeClock())
    for frame in ("1", "2", "3", "4"):
        recent.note(frame)
    assert len(recent) == 3
    assert [recent.delivered(f) for f in ("1", "2", "3", "4")] == [False, True, True, True]


def test_a_frame_delivered_again_counts_from_its_last_delivery() -> None:
    clock = FakeClock()
    recent = RecentFrames(window_s=10, capacity=2, clock=clock)
    recent.note("a")
    recent.note("b")
    clock.t = 5.0
    recent.note("a")  # now the newest: "b" goes first
    recent.note("c")
    assert [recent.delivered(f) for f in ("a", "b", "c")] == [True, False, True]
    clock.t = 14.0
    assert recent.delivered("a") and not recent.delivered("x")
