"""The group-commit writer with a fake transaction: batching, order, isolation of failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.chat.writer import GroupWriter, Outcome, WriteOp
from shared.errors import NotFound


@dataclass(frozen=True)
class Op(WriteOp[str]):
    name: str


class FakeDb:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.committed: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_transaction = asyncio.Event()

    async def apply(self, ops: Sequence[WriteOp[Any]]) -> list[Outcome]:
        names = [op.name for op in ops if isinstance(op, Op)]
        self.batches.append(names)
        self.in_transaction.set()
        await self.gate.wait()
        if "poison" in names and len(names) > 1:
            raise RuntimeError("the whole transaction fails")
        if names == ["poison"]:
            raise RuntimeError("still failing alone")
        self.committed += [n for n in names if n != "refused"]
        return [NotFound("no") if n == "refused" else f"ok:{n}" for n in names]


async def test_operations_queued_during_a_commit_share_the_next_one_in_order() -> None:
    db = FakeDb()
    writer = GroupWriter(db.apply)
    task = asyncio.create_task(writer.run())
    db.gate.clear()
    first = writer.submit(Op("a"))
    await asyncio.wait_for(db.in_transaction.wait(), 1)  # the writer took "a" and waits
    rest = [writer.submit(Op(n)) for n in "bcde"]
    db.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == [f"ok:{n}" for n in "abcde"]
    assert db.batches == [["a"], ["b", "c", "d", "e"]]
    assert (writer.batches, writer.operations) == (2, 5)
    task.cancel()


async def written(*names: str) -> tuple[FakeDb, list[object]]:
    """Submit ``names`` at once, let the writer drain them; each operation's outcome."""
    db = FakeDb()
    writer = GroupWriter(db.apply)
    futures = [writer.submit(Op(n)) for n in names]
    await writer.drain()
    return db, await asyncio.gather(*futures, return_exceptions=True)


async def test_a_refusal_fails_only_its_own_operation() -> None:
    db, outcomes = await written("a", "refused", "b")
    assert outcomes[0] == "ok:a" and outcomes[2] == "ok:b"
    assert isinstance(outcomes[1], NotFound)
    assert db.committed == ["a", "b"]


async def test_a_failed_transaction_is_retried_one_by_one() -> None:
    db, outcomes = await written("a", "poison", "b")
    assert outcomes[0] == "ok:a" and outcomes[2] == "ok:b"
    assert isinstance(outcomes[1], RuntimeError)
    assert db.batches == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    assert db.committed == ["a", "b"]


async def test_batches_are_bounded_and_a_cancelled_waiter_is_skipped() -> None:
    db = FakeDb()
    writer = GroupWriter(db.apply, max_batch=2)
    futures = [writer.submit(Op(n)) for n in "abcde"]
    futures[1].cancel()
    await writer.drain()
    assert db.batches == [["a"], ["c", "d"], ["e"]]
    assert [f.result() for f in futures if not f.cancelled()] == ["ok:a", "ok:c", "ok:d", "ok:e"]
