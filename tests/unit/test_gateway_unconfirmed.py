"""The window of commands a connection hands on before the broker confirmed them (no I/O)."""

from __future__ import annotations

import asyncio

from services.gateway.sessions import MAX_UNCONFIRMED, Unconfirmed


async def finished_soon(task: asyncio.Task[None]) -> bool:
    """Whether ``task`` finished within a short while (it should not have)."""
    finished, _ = await asyncio.wait({task}, timeout=0.1)
    return bool(finished)


async def test_the_reader_waits_for_the_oldest_once_the_window_is_full() -> None:
    loop = asyncio.get_running_loop()
    window = Unconfirmed()
    published = [loop.create_future() for _ in range(MAX_UNCONFIRMED)]
    for future in published[:-1]:
        await window.add(future)  # room: no wait
    adding = asyncio.create_task(window.add(published[-1]))
    assert not await finished_soon(adding)
    published[1].set_result(None)  # not the oldest: still waiting
    assert not await finished_soon(adding)
    published[0].set_result(None)
    await asyncio.wait_for(adding, 1)
    assert not any(f.cancelled() for f in published)


async def test_answers_and_confirmed_commands_take_no_room() -> None:
    loop = asyncio.get_running_loop()
    window = Unconfirmed()
    done = loop.create_future()
    done.set_result(None)
    for _ in range(3 * MAX_UNCONFIRMED):
        await asyncio.wait_for(window.add(None), 1)  # a ping, an error: nothing published
        await asyncio.wait_for(window.add(done), 1)
