"""The rules of help requests, without a database or a broker."""

from __future__ import annotations

import pytest

from services.help import views
from services.help.domain import (
    MIN_TIMER_STEP_S,
    TRANSITIONS,
    Action,
    MentorState,
    Status,
    Urgency,
    became_available,
    by_priority,
    check_mentor_party,
    check_student_owner,
    close_recipients,
    new_request,
    next_status,
    rearm_delay,
    supersedes,
    visible_to_mentor,
)
from shared.auth import Identity, Role
from shared.errors import Conflict, InvalidPayload, NotFound
from shared.protocol.help import StudentRequestHelp
from tests.support.help_requests import help_request

STUDENT = Identity("s1", Role.STUDENT, "Sam")
MENTOR = Identity("m1", Role.MENTOR, "Maya")
OTHER_MENTOR = Identity("m2", Role.MENTOR, "Max")


def mentor(
    status: str = "available", online: bool = True, at: str = "2026-01-01T00:00:00.000Z"
) -> MentorState:
    return MentorState("m1", "Maya", status, online, at)


# -- lifecycle --------------------------------------------------------------------------------


def test_new_request_is_open_and_expires_after_the_expiry() -> None:
    payload = StudentRequestHelp(subject="Math", message="integrals?", urgency="high")
    r = new_request(payload, STUDENT, "r1", now=100.0, expiry_s=900.0)
    assert r.status is Status.OPEN and r.is_open and r.is_broadcast
    assert r.expires_at == 1000.0
    assert r.urgency is Urgency.HIGH
    assert views.request(r) == {
        "request_id": "r1",
        "student_id": "s1",
        "student_name": "Sam",
        "subject": "Math",
        "message": "integrals?",
        "urgency": "high",
        "mentor_id": None,
        "status": "open",
        "created_at": "1970-01-01T00:01:40.000Z",
        "expires_at": "1970-01-01T00:16:40.000Z",
    }


def test_new_request_defaults_to_medium_broadcast_and_keeps_a_target() -> None:
    r = new_request(StudentRequestHelp(subject="x", message="y"), STUDENT, "r", 0.0, 1.0)
    assert r.urgency is Urgency.MEDIUM and r.mentor_id is None
    targeted = StudentRequestHelp(subject="x", message="y", mentor_id="m1")
    t = new_request(targeted, STUDENT, "r", 0, 1)
    assert t.mentor_id == "m1" and not t.is_broadcast


@pytest.mark.parametrize("field", ["subject", "message"])
def test_blank_subject_or_message_is_invalid(field: str) -> None:
    values = {"subject": "Math", "message": "help", field: "   "}
    with pytest.raises(InvalidPayload, match=field):
        new_request(StudentRequestHelp.model_validate(values), STUDENT, "r1", 0.0, 1.0)


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.ACCEPT, Status.ACCEPTED),
        (Action.CANCEL, Status.CANCELLED),
        (Action.EXPIRE, Status.EXPIRED),
    ],
)
def test_an_open_request_moves_once_and_then_never_again(action: Action, status: Status) -> None:
    closed = help_request().moved(action, at=5.0, by=MENTOR)
    assert closed.status is status and closed.closed_at == 5.0 and not closed.is_open
    for again in Action:
        with pytest.raises(Conflict, match=f"already {status.value}"):
            next_status(closed.status, again)


def test_only_open_has_transitions() -> None:
    assert set(TRANSITIONS) == {Status.OPEN}
    assert set(TRANSITIONS[Status.OPEN]) == set(Action)


def test_accept_records_who_accepted() -> None:
    accepted = help_request().moved(Action.ACCEPT, 5.0, MENTOR)
    assert (accepted.closed_by, accepted.closed_by_name) == ("m1", "Maya")


def test_declining_a_targeted_request_closes_it_with_the_reason() -> None:
    declined = help_request(mentor_id="m1").moved(Action.DECLINE, 5.0, MENTOR, "in class")
    assert declined.status is Status.DECLINED and declined.decline_reason == "in class"


def test_declining_a_broadcast_is_not_a_state_change() -> None:
    with pytest.raises(ValueError):
        help_request().moved(Action.DECLINE, 5.0, MENTOR)


# -- who sees what ----------------------------------------------------------------------------


def test_a_broadcast_is_visible_to_every_mentor_until_they_decline_it() -> None:
    r = help_request()
    assert visible_to_mentor(r, "m1", declined=False)
    assert visible_to_mentor(r, "m2", declined=False)
    assert not visible_to_mentor(r, "m1", declined=True)


def test_a_targeted_request_is_visible_to_its_mentor_only() -> None:
    r = help_request(mentor_id="m1")
    assert visible_to_mentor(r, "m1", declined=False)
    assert not visible_to_mentor(r, "m2", declined=False)


def test_a_closed_request_is_visible_to_nobody() -> None:
    for status in (Status.ACCEPTED, Status.CANCELLED, Status.EXPIRED, Status.DECLINED):
        assert not visible_to_mentor(help_request(status=status), "m1", declined=False)


def test_a_mentor_may_not_act_on_a_request_targeted_at_someone_else() -> None:
    targeted = help_request(mentor_id="m1")
    assert check_mentor_party(targeted, MENTOR, "r1") is targeted
    with pytest.raises(NotFound):
        check_mentor_party(targeted, OTHER_MENTOR, "r1")
    with pytest.raises(NotFound):
        check_mentor_party(None, MENTOR, "r1")
    assert check_mentor_party(help_request(), OTHER_MENTOR, "r1").is_broadcast


def test_only_the_asking_student_owns_a_request() -> None:
    assert check_student_owner(help_request(), STUDENT, "r1").request_id == "r1"
    with pytest.raises(NotFound):
        check_student_owner(help_request(), Identity("s2", Role.STUDENT, "Sue"), "r1")


def test_closes_go_to_everyone_shown_but_the_actor() -> None:
    assert close_recipients(["m2", "m1", "m3", "m1"], actor="m1") == ["m2", "m3"]
    assert close_recipients(["m2", "m1"], actor=None) == ["m1", "m2"]
    assert close_recipients([], actor="m1") == []


# -- urgency ordering -------------------------------------------------------------------------


def test_most_urgent_first_then_oldest() -> None:
    requests = [
        help_request("low-old", "low", 1.0),
        help_request("med-new", "medium", 9.0),
        help_request("high-new", "high", 8.0),
        help_request("med-old", "medium", 2.0),
        help_request("high-old", "high", 3.0),
        help_request("low-new", "low", 7.0),
    ]
    assert [r.request_id for r in by_priority(requests)] == [
        "high-old",
        "high-new",
        "med-old",
        "med-new",
        "low-old",
        "low-new",
    ]


def test_urgency_ranks() -> None:
    assert Urgency.HIGH.rank > Urgency.MEDIUM.rank > Urgency.LOW.rank


# -- the mentor view --------------------------------------------------------------------------


def test_available_means_online_and_available() -> None:
    assert mentor().available
    assert not mentor(online=False).available
    assert not mentor(status="busy").available
    assert not mentor(status="offline", online=False).available


def test_became_available_only_on_the_transition() -> None:
    assert became_available(None, mentor())
    assert became_available(mentor(status="busy"), mentor())
    assert became_available(mentor(status="offline", online=False), mentor())
    assert not became_available(mentor(), mentor())
    assert not became_available(mentor(), mentor(status="busy"))
    assert not became_available(None, mentor(status="in_session"))


def test_a_late_fact_does_not_overwrite_a_newer_one() -> None:
    newer = mentor(at="2026-01-01T00:00:02.000Z")
    older = mentor(status="busy", at="2026-01-01T00:00:01.000Z")
    assert supersedes(None, older)
    assert supersedes(older, newer)
    assert not supersedes(newer, older)
    assert supersedes(newer, newer)  # a re-emitted snapshot is applied (and changes nothing)


# -- expiry timers ----------------------------------------------------------------------------


def test_a_rearmed_timer_never_fires_early_and_uses_few_durations() -> None:
    for remaining in (0.01, 0.3, 1.0, 1.7, 59.0, 899.999, 5000.0):
        delay = rearm_delay(remaining)
        assert delay <= max(remaining, MIN_TIMER_STEP_S)
        assert delay >= min(remaining / 2, MIN_TIMER_STEP_S)
    assert rearm_delay(0.01) == MIN_TIMER_STEP_S
    assert len({rearm_delay(x / 10) for x in range(1, 10_000)}) <= 13
