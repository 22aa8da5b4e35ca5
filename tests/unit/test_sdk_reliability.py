"""The SDK's pure reliability logic: backoff with full jitter, dedupe LRU, seq tracking."""

from __future__ import annotations

import random

import pytest
from instantmentor_client.reliability import Backoff, MessageDedupe, SeqTracker

# -- backoff -------------------------------------------------------------------------------


def test_backoff_ceilings_double_then_stay_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(n) for n in range(1, 10)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]
    assert backoff.ceiling(10_000) == 30.0  # no overflow for huge attempt numbers


def test_backoff_delays_are_full_jitter_within_bounds() -> None:
    backoff = Backoff(base=0.1, cap=2.0, rng=random.Random(7))
    for attempt in range(1, 12):
        ceiling = backoff.ceiling(attempt)
        delays = [backoff.delay(attempt) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter: the whole window is used, not just its top
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    a = Backoff(0.5, 30, rng=random.Random(1))
    b = Backoff(0.5, 30, rng=random.Random(1))
    assert [a.delay(n) for n in range(1, 8)] == [b.delay(n) for n in range(1, 8)]


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_rejects_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)
    with pytest.raises(ValueError):
        Backoff(0.5, 1).ceiling(0)


# -- dedupe --------------------------------------------------------------------------------


def test_dedupe_reports_each_id_new_once() -> None:
    dedupe = MessageDedupe(capacity=100)
    assert [dedupe.add(i) for i in ["a", "b", "a", "c", "b"]] == [True, True, False, True, False]
    assert len(dedupe) == 3 and "a" in dedupe and "z" not in dedupe


def test_dedupe_is_bounded_and_forgets_the_least_recently_seen() -> None:
    dedupe = MessageDedupe(capacity=3)
    for message_id in ["m1", "m2", "m3"]:
        dedupe.add(message_id)
    assert dedupe.add("m1") is False  # seen again: now the most recent
    assert dedupe.add("m4") is True  # evicts m2, the least recently seen
    assert len(dedupe) == 3
    assert "m2" not in dedupe and all(m in dedupe for m in ["m1", "m3", "m4"])
    assert dedupe.add("m2") is True  # forgotten, so new again


def test_dedupe_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MessageDedupe(0)


# -- seq tracking --------------------------------------------------------------------------


def test_first_seq_is_the_baseline_and_consecutive_seqs_advance_the_watermark() -> None:
    tracker = SeqTracker()
    assert tracker.observe("c", 57) is False  # older messages are history, not a gap
    assert tracker.watermark("c") == 57
    for seq in (58, 59, 60):
        assert tracker.observe("c", seq) is False
    assert tracker.watermarks() == {"c": 60} and tracker.gaps() == {}
    assert tracker.watermark("other") is None


def test_a_gap_holds_the_watermark_until_filled_in_any_order() -> None:
    tracker = SeqTracker()
    tracker.observe("c", 1)
    assert tracker.observe("c", 4) is True
    assert tracker.observe("c", 6) is True
    assert tracker.watermark("c") == 1 and tracker.highest("c") == 6
    assert tracker.gaps() == {"c": 1}  # sync since 1 returns 2..6
    assert tracker.missing("c") == [2, 3, 5]
    assert tracker.observe("c", 3) is True
    assert tracker.observe("c", 2) is True  # 2,3,4 now contiguous; 5 still missing
    assert tracker.watermark("c") == 4 and tracker.missing("c") == [5]
    assert tracker.observe("c", 5) is False  # absorbs 6 as well
    assert tracker.watermark("c") == 6 and tracker.gaps() == {}


def test_duplicates_and_old_seqs_change_nothing() -> None:
    tracker = SeqTracker()
    for seq in (10, 11, 12):
        tracker.observe("c", seq)
    assert tracker.observe("c", 11) is False
    assert tracker.observe("c", 3) is False
    assert tracker.watermark("c") == 12 and tracker.missing("c") == []


def test_conversations_are_tracked_independently() -> None:
    tracker = SeqTracker()
    tracker.observe("a", 1)
    tracker.observe("b", 5)
    tracker.observe("a", 3)
    assert tracker.watermarks() == {"a": 1, "b": 5}
    assert tracker.gaps() == {"a": 1}
    assert len(tracker) == 2 and "a" in tracker and "x" not in tracker


def test_ackable_needs_a_peer_message_and_never_covers_a_gap() -> None:
    tracker = SeqTracker()
    tracker.observe("c", 1)  # my own message (e.g. the ack of send_message)
    assert tracker.ackable() == {}
    tracker.observe("c", 2, from_peer=True)
    assert tracker.ackable() == {"c": 2}
    tracker.mark_acked("c", 2)
    assert tracker.ackable() == {}
    tracker.observe("c", 4, from_peer=True)  # gap at 3
    assert tracker.ackable() == {}  # receipts stop below a gap
    tracker.observe("c", 3)
    assert tracker.ackable() == {"c": 4}
    tracker.mark_acked("c", 4)
    tracker.mark_acked("c", 1)  # markers only move forward
    assert tracker.ackable() == {}


def test_seeded_watermarks_resume_tracking() -> None:
    tracker = SeqTracker()
    tracker.seed("c", 40)
    tracker.seed("c", 1)  # no effect once tracked
    assert tracker.watermarks() == {"c": 40} and tracker.ackable() == {}
    tracker.observe("c", 42, from_peer=True)
    assert tracker.gaps() == {"c": 40}
    tracker.observe("c", 41, from_peer=True)
    assert tracker.ackable() == {"c": 42}
