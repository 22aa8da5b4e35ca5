"""What clients write is stored without NUL on PostgreSQL, one-to-one (shared.dbtypes)."""

from __future__ import annotations

import itertools

from shared.dbtypes import ESCAPE, NUL, STANDS_FOR_NUL, from_stored, to_stored

ALPHABET = [NUL, STANDS_FOR_NUL, ESCAPE, "x"]
ODD = ["", "plain", NUL, STANDS_FOR_NUL, ESCAPE, ESCAPE + STANDS_FOR_NUL, "a\x00b\ue000c\ue001"]


def test_every_text_comes_back_as_it_was_and_none_is_stored_with_nul() -> None:
    texts = ["".join(parts) for parts in itertools.product(ALPHABET, repeat=4)]
    for text in [*ODD, *texts]:
        stored = to_stored(text)
        assert NUL not in stored
        assert from_stored(stored) == text


def test_two_texts_are_never_stored_alike_and_plain_ones_are_stored_as_they_are() -> None:
    texts = ["".join(parts) for parts in itertools.product(ALPHABET, repeat=3)]
    assert len({to_stored(t) for t in texts}) == len(set(texts))
    assert to_stored("héllo 🙂") == "héllo 🙂"
    assert len(to_stored("a\x00b")) == 3  # a NUL costs no length (columns have limits)
