"""The gateway's garbage-collector policy: the oldest generation waits, pauses are measured."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shared.gc_policy import OLDEST_AFTER, tune_for_long_lived_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def _pauses(generation: str) -> float:
    value = REGISTRY.get_sample_value("im_gc_pause_seconds_sum", {"generation": generation})
    return value or 0.0


def test_full_collections_wait_and_every_pause_is_measured(restored_gc: None) -> None:
    young, middle, _ = gc.get_threshold()
    tune_for_long_lived_heap()
    tune_for_long_lived_heap()  # idempotent: one clock, not two
    assert gc.get_threshold() == (young, middle, OLDEST_AFTER)
    assert gc.get_freeze_count() > 0, "what start-up made is out of the collector's sight"
    before = _pauses("2")
    garbage: list[list[object]] = [[] for _ in range(1000)]
    for a, b in zip(garbage, garbage[1:], strict=False):
        a.append(b)
        b.append(a)  # cycles only a collection frees
    del garbage, a, b
    gc.collect()
    assert _pauses("2") > before
    assert sum(1 for cb in gc.callbacks if type(cb).__name__ == "_PauseClock") == 1
