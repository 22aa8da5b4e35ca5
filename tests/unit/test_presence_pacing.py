"""Status broadcasts paced per mentor: one at once, the rest of a burst folded into one."""

from __future__ import annotations

from services.presence.pacing import BroadcastPacer, Pace


def test_a_burst_is_one_broadcast_now_and_one_at_the_end_of_the_window() -> None:
    clock = [0.0]
    pacer = BroadcastPacer(0.25, clock=lambda: clock[0])
    assert pacer.decide("m1") is Pace.NOW
    clock[0] = 0.05
    assert pacer.decide("m1") is Pace.ARM
    for t in (0.1, 0.2, 0.3):
        clock[0] = t
        assert pacer.decide("m1") is Pace.FOLDED
    assert pacer.decide("m2") is Pace.NOW  # mentors are paced apart
    clock[0] = 0.31
    pacer.flushed("m1")
    clock[0] = 0.4
    assert pacer.decide("m1") is Pace.ARM  # within a window of the flush
    clock[0] = 0.7
    pacer.flushed("m1")
    clock[0] = 1.0
    assert pacer.decide("m1") is Pace.NOW  # quiet for a window: at once again


def test_a_flush_that_never_came_back_is_given_up_after_a_few_windows() -> None:
    clock = [0.0]
    pacer = BroadcastPacer(0.25, clock=lambda: clock[0])
    pacer.decide("m1")
    clock[0] = 0.1
    assert pacer.decide("m1") is Pace.ARM  # the timer fires on another replica
    clock[0] = 0.5
    assert pacer.decide("m1") is Pace.FOLDED
    clock[0] = 1.2
    assert pacer.decide("m1") is Pace.NOW
