"""Status broadcasts paced per mentor: one at once, the rest of a burst folded into one."""

from __future__ import annotations

from services.presence.pacing import BroadcastPacer, Pace


def test_a_burst_is_one_broadcast_now_and_one_at_the_end_of_the_window() -> None:
    clock = [0.0]
    pacer = BroadcastPacer(0.25, clock=lambda: clock[0])
    assert pacer.decide("m1") is Pace.NOW
    clock[0] = 0.05
    assert pacer.decide("m1") is Pace.ARM
    for t in (0.1, 0.15):
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


def test_a_change_late_in_the_window_is_never_left_to_a_timer_that_may_have_fired() -> None:
    clock = [0.0]
    pacer = BroadcastPacer(0.25, clock=lambda: clock[0])
    pacer.decide("m1")
    clock[0] = 0.1
    assert pacer.decide("m1") is Pace.ARM  # its timer may fire on another replica
    clock[0] = 0.24  # more than half a window after arming: a timer of its own
    assert pacer.decide("m1") is Pace.ARM
    clock[0] = 1.2
    assert pacer.decide("m1") is Pace.NOW
