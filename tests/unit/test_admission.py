"""The gateway's admission control: a lane whose oldest command waits too long is refused."""

from __future__ import annotations

import logging

import pytest

from services.gateway.admission import Admission, Limits
from shared.errors import Overloaded
from shared.logs import Tally

CHAT, TYPING = ("chat", False), ("chat", True)


def _admission() -> Admission:
    return Admission(Limits(durable_s=2.0, transient_s=0.5), Tally(logging.getLogger("t"), "%d"))


def test_a_quiet_lane_admits() -> None:
    admission = _admission()
    admission.admit(CHAT, now=100.0)
    admission.started(CHAT, "c1", at=100.0)
    admission.admit(CHAT, now=101.9)


def test_a_lane_behind_is_refused_with_a_hint_until_its_oldest_is_answered() -> None:
    admission = _admission()
    admission.started(CHAT, "old", at=100.0)
    admission.started(CHAT, "new", at=101.5)
    with pytest.raises(Overloaded) as refused:
        admission.admit(CHAT, now=102.1)
    assert refused.value.retry_after_ms == 2000
    admission.finished(CHAT, "old")
    admission.admit(CHAT, now=102.1)  # the oldest left is 0.6 s old


def test_transient_traffic_is_shed_first() -> None:
    admission = _admission()
    admission.started(TYPING, "t", at=100.0)
    admission.started(CHAT, "c", at=100.0)
    with pytest.raises(Overloaded):
        admission.admit(TYPING, now=100.6)
    admission.admit(CHAT, now=100.6)


def test_lanes_are_independent() -> None:
    admission = _admission()
    admission.started(("calls", False), "x", at=0.0)
    admission.admit(CHAT, now=50.0)
    assert admission.oldest_age(("calls", False), now=50.0) == 50.0
