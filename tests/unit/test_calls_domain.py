"""The call state machine, pure: every transition, every illegal one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.calls import domain
from services.calls.domain import Call, Caller, CallState, IllegalTransition, RejectReason
from shared.errors import Conflict, Forbidden, InvalidPayload, NotFound

T0 = 1_000.0
RING = 30.0
ALICE = Caller("alice", "Alice", "student")


def ringing(**changes: object) -> Call:
    call = domain.start_call("c1", ALICE, "bob", "video", {"sdp": "x"}, T0, RING, "conn-a")
    return replace(call, **changes)  # type: ignore[arg-type]


def accepted() -> Call:
    return domain.accept(ringing(), "bob", "Bob", T0 + 5, {"answer": 1})


def test_start_call_rings_until_the_timeout() -> None:
    call = ringing()
    assert call.state is CallState.RINGING
    assert (call.caller_id, call.receiver_id, call.call_type) == ("alice", "bob", "video")
    assert call.expires_at == T0 + RING
    assert call.rings_at(T0 + RING - 0.001)
    assert not call.rings_at(T0 + RING)
    assert call.origin_connection == "conn-a"


def test_calling_yourself_is_an_invalid_payload() -> None:
    with pytest.raises(InvalidPayload):
        domain.start_call("c1", ALICE, "alice", "audio", None, T0, RING)


def test_accept_by_the_receiver() -> None:
    call = accepted()
    assert call.state is CallState.ACCEPTED
    assert call.accepted_by == "bob" and call.accepted_at == T0 + 5
    assert call.accept_data == {"answer": 1}
    assert call.receiver_name == "Bob"


def test_reject_by_the_receiver_with_a_reason() -> None:
    call = domain.reject(ringing(), "bob", "Bob", T0 + 1, "in a meeting")
    assert call.state is CallState.REJECTED
    assert (call.rejected_by, call.reason, call.ended_at) == ("bob", "in a meeting", T0 + 1)


def test_end_while_ringing_cancels() -> None:
    for who in ("alice", "bob"):
        call = domain.hang_up(ringing(), who, T0 + 2)
        assert call.state is CallState.ENDED
        assert (call.ended_by, call.reason, call.duration_s) == (who, "cancelled", 0.0)


def test_end_after_accept_hangs_up_with_the_duration() -> None:
    for who in ("alice", "bob"):
        call = domain.hang_up(accepted(), who, T0 + 65.5)
        assert call.state is CallState.ENDED
        assert (call.ended_by, call.reason) == (who, "hangup")
        assert call.duration_s == 60.5


def test_time_out_misses_a_ringing_call() -> None:
    call = domain.time_out(ringing(), T0 + RING)
    assert call.state is CallState.MISSED and call.ended_at == T0 + RING


def test_system_rejections() -> None:
    for reason in RejectReason:
        call = domain.reject_by_system(ringing(), reason, T0)
        assert call.state is CallState.REJECTED
        assert call.rejected_by is None and call.reason == reason.value


def test_a_party_gone_cancels_a_ringing_call_and_drops_an_accepted_one() -> None:
    for who in ("alice", "bob"):
        cancelled = domain.drop_party(ringing(), who, T0 + 3)
        assert (cancelled.state, cancelled.ended_by, cancelled.reason) == (
            CallState.ENDED,
            None,
            "cancelled",
        )
        lost = domain.drop_party(accepted(), who, T0 + 15)
        assert (lost.state, lost.ended_by, lost.reason) == (
            CallState.ENDED,
            None,
            "connection_lost",
        )
        assert lost.duration_s == 10.0


def test_signal_goes_to_the_other_party_while_ringing_or_accepted() -> None:
    for call in (ringing(), accepted()):
        assert domain.signal_target(call, "alice") == "bob"
        assert domain.signal_target(call, "bob") == "alice"


# -- illegal moves ---------------------------------------------------------------------------


def final_calls() -> list[Call]:
    return [
        domain.reject(ringing(), "bob", "Bob", T0 + 1, None),
        domain.time_out(ringing(), T0 + RING),
        domain.hang_up(ringing(), "alice", T0 + 1),
        domain.hang_up(accepted(), "bob", T0 + 9),
    ]


@pytest.mark.parametrize("state", list(CallState))
def test_the_transition_table_is_the_protocols(state: CallState) -> None:
    expected = {
        CallState.RINGING: {"accepted", "rejected", "missed", "ended"},
        CallState.ACCEPTED: {"ended"},
    }.get(state, set())
    call = ringing(state=state)
    for target in CallState:
        if target.value in expected:
            assert call.move(target).state is target
        else:
            with pytest.raises(IllegalTransition):
                call.move(target)


def test_illegal_transitions_are_conflicts() -> None:
    assert issubclass(IllegalTransition, Conflict)


def test_nothing_moves_a_final_call() -> None:
    for call in final_calls():
        with pytest.raises(Conflict):
            domain.accept(call, "bob", "Bob", T0 + 2, None)
        with pytest.raises(Conflict):
            domain.reject(call, "bob", "Bob", T0 + 2, None)
        with pytest.raises(Conflict):
            domain.hang_up(call, "alice", T0 + 2)
        with pytest.raises(Conflict):
            domain.time_out(call, T0 + RING)
        with pytest.raises(Conflict):
            domain.signal_target(call, "alice")
        with pytest.raises(Conflict):
            domain.drop_party(call, "bob", T0 + 2)


def test_an_accepted_call_cannot_be_accepted_rejected_or_missed() -> None:
    call = accepted()
    with pytest.raises(Conflict):
        domain.accept(call, "bob", "Bob", T0 + 6, None)
    with pytest.raises(Conflict):
        domain.reject(call, "bob", "Bob", T0 + 6, None)
    with pytest.raises(Conflict):
        domain.time_out(call, T0 + RING)


def test_past_the_ring_timeout_nobody_can_answer_or_cancel() -> None:
    late = T0 + RING
    with pytest.raises(Conflict):
        domain.accept(ringing(), "bob", "Bob", late, None)
    with pytest.raises(Conflict):
        domain.reject(ringing(), "bob", "Bob", late, None)
    with pytest.raises(Conflict):
        domain.hang_up(ringing(), "alice", late)
    assert domain.time_out(ringing(), late).state is CallState.MISSED


def test_the_caller_may_not_answer_their_own_call() -> None:
    with pytest.raises(Forbidden):
        domain.accept(ringing(), "alice", "Alice", T0 + 1, None)
    with pytest.raises(Forbidden):
        domain.reject(ringing(), "alice", "Alice", T0 + 1, None)


def test_strangers_do_not_see_the_call() -> None:
    for action in (
        lambda c: domain.accept(c, "eve", "Eve", T0 + 1, None),
        lambda c: domain.reject(c, "eve", "Eve", T0 + 1, None),
        lambda c: domain.hang_up(c, "eve", T0 + 1),
        lambda c: domain.signal_target(c, "eve"),
        lambda c: domain.drop_party(c, "eve", T0 + 1),
    ):
        with pytest.raises(NotFound):
            action(ringing())
        # Even on a final call a stranger learns nothing (not_found before conflict).
        with pytest.raises(NotFound):
            action(final_calls()[0])


def test_wrong_party_is_checked_before_the_state() -> None:
    with pytest.raises(Forbidden):
        domain.accept(final_calls()[0], "alice", "Alice", T0 + 1, None)


def test_already_done_recognises_the_first_run_of_a_redelivered_command() -> None:
    call = accepted()
    assert domain.already_done(call, "accept_call", "bob")
    assert not domain.already_done(call, "accept_call", "alice")
    assert not domain.already_done(call, "end_call", "bob")
    ended = domain.hang_up(call, "alice", T0 + 8)
    assert domain.already_done(ended, "end_call", "alice")
    rejected = domain.reject(ringing(), "bob", "Bob", T0 + 1, None)
    assert domain.already_done(rejected, "reject_call", "bob")
    assert not domain.already_done(ringing(), "initiate_call", "alice")


def test_outcomes_for_the_history() -> None:
    assert domain.outcome(ringing()) == "ringing"
    assert domain.outcome(accepted()) == "in_progress"
    assert domain.outcome(domain.hang_up(accepted(), "bob", T0 + 9)) == "completed"
    assert domain.outcome(domain.drop_party(accepted(), "bob", T0 + 9)) == "connection_lost"
    assert domain.outcome(domain.hang_up(ringing(), "alice", T0 + 1)) == "cancelled"
    assert domain.outcome(domain.reject(ringing(), "bob", "Bob", T0 + 1, "no")) == "rejected"
    assert domain.outcome(domain.reject_by_system(ringing(), RejectReason.BUSY, T0)) == "busy"
    assert domain.outcome(domain.reject_by_system(ringing(), RejectReason.OFFLINE, T0)) == "offline"
    assert domain.outcome(domain.time_out(ringing(), T0 + RING)) == "missed"
