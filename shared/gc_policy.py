"""Garbage-collector settings for a process holding a large, long-lived heap (a gateway with
thousands of connections), and the pauses it causes as a metric.

CPython runs a full collection each time objects that survived into the oldest generation
grew by a quarter since the last one. A gateway's heap is mostly per-connection state that
lives as long as its socket (a few hundred tracked objects each): a storm of 5,000 connects
grows it by ~1 M objects, so full collections ran one after another, each stopping the event
loop for 0.4-0.7 s (measured; a third of the gateway's CPU in the storm). With the oldest
generation considered only after ``OLDEST_AFTER`` collections of the middle one (default 10)
a full collection comes every few million allocations at most; young garbage, where cycles
usually are, is still collected as often as before. Objects alive after start-up (modules,
the app, the schemas) are moved out of the collector's sight with :func:`gc.freeze`.

The price: garbage kept by a reference cycle that reached the oldest generation waits that
long too, so nothing a connection leaves behind may be kept by a cycle
(``services/gateway/wire.py`` for ``/ws``, ``services/gateway/engineio_server.py`` for
Socket.IO).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

OLDEST_AFTER = 1000  # collections of generation 1 before generation 2 is considered

GC_PAUSE = Histogram(
    "im_gc_pause_seconds",
    "Event loop stopped by the garbage collector, per generation collected",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


class _PauseClock:
    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            elapsed = time.perf_counter() - self.started
            GC_PAUSE.labels(str(info["generation"])).observe(elapsed)


def tune_for_long_lived_heap() -> None:
    """Call once start-up is done, before serving."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, OLDEST_AFTER)
    gc.collect()
    gc.freeze()
    if not any(isinstance(callback, _PauseClock) for callback in gc.callbacks):
        gc.callbacks.append(_PauseClock())
