"""Admission of new sockets during a connect storm (pure: a fake clock)."""

from __future__ import annotations

from services.gateway.connect_gate import MIN_RETRY_MS, ConnectGate
from tests.support.clock import FakeClock


def test_sockets_beyond_the_limit_are_refused_until_one_is_set_up() -> None:
    gate = ConnectGate(max_pending=2, clock=FakeClock(100.0))
    first, second = gate.enter(), gate.enter()
    assert first is not None and second is not None
    assert gate.enter() is None
    first.done()
    first.done()  # idempotent
    assert gate.pending == 1
    assert gate.enter() is not None


def test_the_pace_follows_how_long_set_ups_take() -> None:
    clock = FakeClock(100.0)
    gate = ConnectGate(max_pending=10, clock=clock)
    for _ in range(100):  # set-ups that take 50 ms each
        ticket = gate.enter()
        assert ticket is not None
        clock.t += 0.05
        ticket.done()
    assert 0.049 < gate.setup_s < 0.06
    assert 160 < gate.rate_per_s < 210  # 10 at a time, 50 ms each: 200/s


def test_the_refused_are_given_slots_spread_at_that_pace() -> None:
    clock = FakeClock(100.0)
    gate = ConnectGate(max_pending=10, clock=clock)
    gate.setup_s = 0.1  # 100/s
    tickets = [gate.enter() for _ in range(10)]
    assert all(tickets) and gate.enter() is None
    hints = [gate.retry_after_ms() for _ in range(100)]
    assert hints == sorted(hints) and len(set(hints)) == len(hints), "each gets its own slot"
    # the 10 being set up first (0.1 s), then one slot per 10 ms
    assert hints[0] == 110 and hints[-1] == 1100


def test_slots_are_not_handed_out_in_the_past() -> None:
    clock = FakeClock(100.0)
    gate = ConnectGate(max_pending=1, clock=clock)
    assert gate.enter() is not None
    early = gate.retry_after_ms()
    clock.t += 60.0  # long after the slot given: the next hint starts from now
    assert MIN_RETRY_MS <= gate.retry_after_ms() <= early + 1
