"""Group commit: many handlers' writes in one transaction, each handler still waiting for *its*
commit before it returns (so "stored before acknowledged" holds, at a fraction of the cost
of one commit per message).

Handlers ``submit`` an operation and await the future it returns. One task takes everything
queued so far, applies it in submission order in one transaction and resolves each future
with that operation's result (or its refusal). While a batch commits, the next one queues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

log = logging.getLogger(__name__)

R = TypeVar("R")


class WriteOp(Generic[R]):
    """An operation whose result has type ``R`` (the type parameter only guides ``submit``)."""


Outcome = object  # a result, or the exception to raise in the submitting handler
ApplyBatch = Callable[[Sequence[WriteOp[Any]]], Awaitable[list[Outcome]]]


@dataclass(slots=True)
class _Pending:
    op: WriteOp[Any]
    future: asyncio.Future[Any]


class GroupWriter:
    """``apply`` runs a batch in one transaction and returns one outcome per operation, in
    order; an exception among the outcomes refuses that operation only. When ``apply`` itself
    raises (the transaction failed), every operation of the batch is retried on its own, so
    one bad operation cannot fail its neighbours."""

    def __init__(self, apply: ApplyBatch, max_batch: int = 256) -> None:
        self._apply = apply
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.batches = 0
        self.operations = 0

    def submit(self, op: WriteOp[R]) -> asyncio.Future[R]:
        """Queue ``op`` now (synchronously: the submission order is the commit order) and
        return the future of its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(op, future))
        return cast("asyncio.Future[R]", future)

    async def run(self, *_: object) -> None:
        """The writer task (a service background job)."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self.commit(batch)

    async def drain(self) -> None:
        """Commit whatever is queued (for tests and shutdown)."""
        while not self._queue.empty():
            batch: list[_Pending] = []
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self.commit(batch)

    async def commit(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # a cancelled handler wants nothing
        if not live:
            return
        try:
            outcomes = await self._apply([p.op for p in live])
        except Exception as exc:
            if len(live) == 1:
                log.warning("write failed: %r", exc)
                _settle(live[0], exc)
                return
            log.warning("batch of %d failed (%r); retrying one by one", len(live), exc)
            for pending in live:
                await self.commit([pending])
            return
        self.batches += 1
        self.operations += len(live)
        for pending, outcome in zip(live, outcomes, strict=True):
            _settle(pending, outcome)


def _settle(pending: _Pending, outcome: Outcome) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, BaseException):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
