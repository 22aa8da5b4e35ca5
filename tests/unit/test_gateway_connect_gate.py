"""Admission of new sockets during a connect storm (pure: a fake clock)."""

from __future__ import annotations

from services.gateway.connect_gate import MIN_RATE_PER_S, MIN_RETRY_MS, ConnectGate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_sockets_beyond_the_limit_are_refused_until_one_is_set_up() -> None:
    gate = ConnectGate(max_pending=2, clock=Clock())
    first, second = gate.enter(), gate.enter()
    assert first is not None and second is not None
    assert gate.enter() is None
    first.done()
    first.done()  # idempotent
    assert gate.pending == 1
    assert gate.enter() is not None


def test_the_refused_are_given_slots_spread_at_the_measured_rate() -> None:
    clock = Clock()
    gate = ConnectGate(max_pending=10, clock=clock)
    tickets = [gate.enter() for _ in range(10)]
    for ticket in tickets[:5]:  # half the set-ups complete within a second...
        assert ticket is not None
        ticket.done()
    clock.t += 1.0
    tickets += [gate.enter() for _ in range(5)]
    assert gate.enter() is None  # ...so the rate is known, and the gate is full again
    hints = [gate.retry_after_ms() for _ in range(100)]
    assert hints == sorted(hints) and len(set(hints)) == len(hints), "each gets its own slot"
    assert hints[0] >= MIN_RETRY_MS
    # 10 pending + 100 refused at no less than the floor rate: the last waits about that long
    assert hints[-1] <= round(1000 * 110 / MIN_RATE_PER_S) + 1


def test_slots_are_not_handed_out_in_the_past() -> None:
    clock = Clock()
    gate = ConnectGate(max_pending=1, clock=clock)
    assert gate.enter() is not None
    early = gate.retry_after_ms()
    clock.t += 60.0  # long after the slot given: the next hint starts from now
    assert MIN_RETRY_MS <= gate.retry_after_ms() <= early + 1
