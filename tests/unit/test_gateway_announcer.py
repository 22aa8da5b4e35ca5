"""The gateway's batching of connection facts (no broker: the publish is recorded)."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.announcer import MAX_BATCH, Announcer
from shared.errors import Unavailable
from shared.protocol.domain import ConnectionFact, ConnectionsChanged
from tests.support.stack import poll


def fact(connection_id: str) -> ConnectionFact:
    return ConnectionFact(
        gateway_id="g",
        connection_id=connection_id,
        user_id=f"u-{connection_id}",
        role="student",
        name="",
        reply_to="q",
        at=1.0,
    )


class Recorder:
    def __init__(self) -> None:
        self.batches: list[ConnectionsChanged] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.started = 0  # publishes begun (some may wait at the gate)

    async def publish(self, batch: ConnectionsChanged) -> None:
        self.started += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(batch)


async def test_connections_announced_together_go_out_as_one_fact() -> None:
    recorder = Recorder()
    announcer = Announcer(recorder.publish, window_s=0.001)
    await asyncio.gather(*(announcer.opened(fact(str(i))) for i in range(50)))
    assert len(recorder.batches) == 1
    assert [f.connection_id for f in recorder.batches[0].opened] == [str(i) for i in range(50)]


async def test_a_batch_gathers_while_the_previous_one_is_confirmed_and_order_is_kept() -> None:
    recorder = Recorder()
    announcer = Announcer(recorder.publish, window_s=0)
    recorder.gate.clear()  # the first batch waits for its confirm
    first = asyncio.create_task(announcer.opened(fact("a")))
    await poll(lambda: recorder.started == 1, 1, "the first batch to be published")
    later = [asyncio.create_task(announcer.closed(fact("a")))]
    later += [asyncio.create_task(announcer.opened(fact(c))) for c in "bc"]
    await poll(lambda: announcer.pending() == 3, 1, "the later three to wait")
    assert not first.done() and recorder.started == 1
    recorder.gate.set()
    await asyncio.gather(first, *later)
    # the open of "a" was confirmed before its close was sent; the rest went out together
    assert [[f.connection_id for f in b.opened] for b in recorder.batches] == [
        ["a"],
        ["b", "c"],
        [],
    ]
    assert [f.connection_id for f in recorder.batches[2].closed] == ["a"]


async def test_every_waiter_of_a_failed_batch_hears_of_it_and_the_next_batch_still_goes() -> None:
    recorder = Recorder()
    announcer = Announcer(recorder.publish, window_s=0.001)
    recorder.fail = Unavailable("broker away")
    outcomes = await asyncio.gather(
        *(announcer.opened(fact(str(i))) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, Unavailable) for o in outcomes)
    recorder.fail = None
    await announcer.opened(fact("x"))
    assert [f.connection_id for f in recorder.batches[0].opened] == ["x"]


async def test_a_caller_that_gives_up_does_not_cancel_the_batch_of_the_others() -> None:
    recorder = Recorder()
    announcer = Announcer(recorder.publish, window_s=0.01)
    recorder.gate.clear()  # the batch waits for its confirm while the quitter leaves
    quitter = asyncio.create_task(announcer.opened(fact("q")))
    stayer = asyncio.create_task(announcer.opened(fact("s")))
    await poll(lambda: recorder.started == 1, 1, "the batch of both to be published")
    quitter.cancel()
    recorder.gate.set()
    await stayer
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert [f.connection_id for f in recorder.batches[0].opened] == ["q", "s"]


async def test_a_huge_batch_is_split_into_bounded_messages() -> None:
    recorder = Recorder()
    announcer = Announcer(recorder.publish, window_s=0.001)
    await asyncio.gather(*(announcer.opened(fact(str(i))) for i in range(MAX_BATCH + 1)))
    assert [len(b.opened) for b in recorder.batches] == [MAX_BATCH, 1]
