"""Presence rules without a broker or a database."""

from __future__ import annotations

from services.presence import domain
from services.presence.domain import Mentor, Status, UserPresence
from services.presence.views import mentor_status, mentor_status_for
from shared.protocol.presence import listing_order


def test_grace_timer_of_a_quick_reconnect_is_stale() -> None:
    user = UserPresence("m1", "mentor").connected()
    user, stamp = user.last_connection_closed()
    user = user.connected()  # reconnect within the grace
    assert user.grace_expired(stamp, has_connections=True) is None
    assert user.grace_expired(stamp, has_connections=False) is None, "stamp is stale"


def test_grace_expiry_takes_a_user_offline_once() -> None:
    user = UserPresence("m1", "mentor").connected()
    user, stamp = user.last_connection_closed()
    offline = user.grace_expired(stamp, has_connections=False)
    assert offline is not None and offline.online is False
    assert offline.grace_expired(stamp, has_connections=False) is None


def test_new_mentor_is_available_when_online_and_offline_otherwise() -> None:
    mentor = Mentor("m1", "Maya")
    assert mentor.status is Status.OFFLINE
    assert domain.set_online(mentor, True, 1.0).status is Status.AVAILABLE


def test_chosen_status_is_remembered_across_offline() -> None:
    mentor = domain.set_online(Mentor("m1", "Maya"), True, 1.0)
    mentor = domain.choose_status(mentor, Status.BREAK, "lunch", {"back": "13:00"}, 2.0)
    gone = domain.set_online(mentor, False, 3.0)
    assert gone.status is Status.OFFLINE and mentor_status(gone)["online"] is False
    back = domain.set_online(gone, True, 4.0)
    assert back.status is Status.BREAK
    assert mentor_status(back)["status_message"] == "lunch"
    assert mentor_status(back)["status_data"] == {"back": "13:00"}


def test_in_session_during_calls_then_previous_status() -> None:
    mentor = domain.choose_status(
        domain.set_online(Mentor("m1", "M"), True, 1), Status.BUSY, None, None, 2
    )
    first = domain.session_started(mentor, "c1", 3)
    both = domain.session_started(first, "c2", 4)
    assert both.status is Status.IN_SESSION
    one_left = domain.session_ended(both, "c1", 5)
    assert one_left.status is Status.IN_SESSION
    assert domain.session_ended(one_left, "c2", 6).status is Status.BUSY


def test_session_events_are_idempotent() -> None:
    mentor = domain.set_online(Mentor("m1", "M"), True, 1)
    started = domain.session_started(mentor, "c1", 2)
    assert domain.session_started(started, "c1", 3) is started
    ended = domain.session_ended(started, "c1", 4)
    assert domain.session_ended(ended, "c1", 5) is ended


def test_an_end_that_overtakes_its_accept_wins() -> None:
    mentor = domain.set_online(Mentor("m1", "M"), True, 1)
    ended_first = domain.session_ended(mentor, "c1", 2)
    assert ended_first.status is Status.AVAILABLE
    assert not domain.changed(mentor, ended_first), "nothing visible changes"
    assert domain.session_started(ended_first, "c1", 3).status is Status.AVAILABLE


def test_changed_ignores_the_timestamp_only() -> None:
    mentor = domain.set_online(Mentor("m1", "M"), True, 1)
    same = domain.choose_status(mentor, Status.AVAILABLE, None, None, 99)
    assert not domain.changed(mentor, same)
    assert domain.changed(mentor, domain.choose_status(mentor, Status.AVAILABLE, "hi", None, 99))
    assert domain.changed(None, mentor)


def test_listing_puts_online_available_first() -> None:
    a = domain.set_online(Mentor("a", "Zed"), True, 1)
    b = domain.choose_status(
        domain.set_online(Mentor("b", "Amy"), True, 1), Status.BUSY, None, None, 1
    )
    c = Mentor("c", "Ann")
    hidden = domain.choose_status(
        domain.set_online(Mentor("d", "Abe"), True, 1), Status.OFFLINE, None, None, 1
    )
    views = [mentor_status(m) for m in (hidden, c, b, a)]
    assert [v["mentor_id"] for v in listing_order(views)] == ["a", "b", "d", "c"]


def test_a_mentor_appearing_offline_looks_disconnected_to_others_only() -> None:
    online = Mentor("maya", "Maya", online=True)
    hidden = domain.choose_status(online, Status.OFFLINE, "away", None, now=1.0)
    public, own = mentor_status(hidden), mentor_status_for(hidden, "maya")
    disconnected = mentor_status(Mentor("maya", "Maya", chosen=Status.AVAILABLE, online=False))
    assert (public["status"], public["online"]) == (disconnected["status"], disconnected["online"])
    assert (own["status"], own["online"]) == ("offline", True)
    assert mentor_status_for(hidden, "someone-else") == public


def test_users_are_told_apart_by_their_gateway_share_only_when_it_changes() -> None:
    before = {"s1": {"g1"}, "s2": {"g1", "g2"}, "s3": {"g1"}}
    after = {"s1": {"g1", "g2"}, "s2": {"g2"}, "s3": {"g1"}}
    assert domain.spread_changes(before, after) == {"s1": {"g1", "g2"}, "s2": {"g2"}}


def test_chunks_split_in_order_and_give_nothing_for_nothing() -> None:
    assert domain.chunks([1, 2, 3, 4, 5], size=2) == [[1, 2], [3, 4], [5]]
    assert domain.chunks([]) == []
