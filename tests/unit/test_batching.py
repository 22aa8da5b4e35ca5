"""The Batcher (no I/O): batches start in order; with several in flight, a failed one tells
only its own items and frees its slot."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import Batcher


class Flusher:
    """Records each batch, and holds it until its gate opens (a broker not yet confirming)."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.fail = fail or set()

    async def flush(self, items: list[int]) -> None:
        number = len(self.batches)
        self.batches.append(items)
        self.gates.append(gate := asyncio.Event())
        await gate.wait()
        if number in self.fail:
            raise RuntimeError(f"batch {number} refused")


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_items_added_meanwhile_go_together_and_in_order(in_flight: int) -> None:
    flusher = Flusher()
    batcher = Batcher(flusher.flush, window_s=0.0, in_flight=in_flight)
    done = [batcher.submit(0)]
    await settle()
    done += [batcher.submit(i) for i in (1, 2)]
    await settle()
    assert len(flusher.batches) == in_flight  # one slot: the second waits for the first
    done.append(batcher.submit(3))
    for _ in range(4):
        for gate in flusher.gates:
            gate.set()
        await settle()
    await asyncio.gather(*done)
    assert [i for batch in flusher.batches for i in batch] == [0, 1, 2, 3]
    assert flusher.batches[0] == [0]


async def test_a_failed_batch_fails_its_own_items_and_frees_its_slot() -> None:
    flusher = Flusher(fail={0})
    batcher = Batcher(flusher.flush, window_s=0.0, in_flight=2)
    first = batcher.submit(0)
    await settle()
    second = batcher.submit(1)
    await settle()
    assert flusher.batches == [[0], [1]]
    flusher.gates[0].set()
    with pytest.raises(RuntimeError, match="batch 0"):
        await first
    third = batcher.submit(2)  # the failed batch's slot is free again
    await settle()
    assert flusher.batches == [[0], [1], [2]]
    flusher.gates[1].set()
    flusher.gates[2].set()
    await asyncio.gather(second, third)
