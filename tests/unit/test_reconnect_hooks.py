"""What runs after the broker connection comes back: a hook the broker refuses is run again
while the connection lasts, and a new reconnection gives up the old run (no broker needed)."""

from __future__ import annotations

import asyncio

from shared.amqp.hooks import LONGEST_PAUSE_S, ReconnectHooks, run_until_done
from shared.errors import Overloaded, Unavailable
from tests.support.stack import poll


class Flaky:
    """A hook that the broker refuses ``refusals`` times, then takes."""

    def __init__(self, refusals: int, error: Exception | None = None) -> None:
        self.refusals = refusals
        self.error = error or Overloaded("the broker refused the message")
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise self.error


async def test_a_refused_hook_runs_again_with_growing_pauses_until_it_succeeds() -> None:
    hook, pauses = Flaky(refusals=6), list[float]()

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    assert await run_until_done(hook, connected=lambda: True, pause=pause)
    assert hook.calls == 7
    assert pauses == [0.2, 0.4, 0.8, 1.6, LONGEST_PAUSE_S, LONGEST_PAUSE_S]


async def test_a_hook_stops_when_the_connection_is_gone_or_it_fails_otherwise() -> None:
    async def no_pause(seconds: float) -> None:
        pass

    lost = Flaky(refusals=5, error=Unavailable("message broker unavailable"))
    assert not await run_until_done(lost, connected=lambda: False, pause=no_pause)
    assert lost.calls == 1  # the next reconnection runs it again
    broken = Flaky(refusals=5, error=KeyError("a bug"))
    assert not await run_until_done(broken, connected=lambda: True, pause=no_pause)
    assert broken.calls == 1


async def test_hooks_run_in_order_and_a_new_reconnection_gives_up_the_old_run() -> None:
    ran: list[str] = []
    release = asyncio.Event()
    hooks = ReconnectHooks(link_up=lambda: True, connected=lambda: True)

    async def first() -> None:
        ran.append("first")
        await release.wait()

    async def second() -> None:
        ran.append("second")

    hooks.after += [first, second]
    hooks.start_after()
    await poll(lambda: ran == ["first"], 2, "the first hook")
    hooks.start_after()  # connection lost and back while the first run waited
    release.set()
    await poll(lambda: ran == ["first", "first", "second"], 2, "both hooks, run again")
    hooks.cancel()


async def test_a_hook_before_reconnection_runs_again_while_the_link_is_up() -> None:
    ran: list[str] = []
    link = {"up": True}
    hooks = ReconnectHooks(link_up=lambda: link["up"], connected=lambda: False)
    refused_binding = Flaky(refusals=1, error=Unavailable("message broker unavailable"))

    async def binding() -> None:
        await refused_binding()
        ran.append("bound")

    async def lost() -> None:
        link["up"] = False
        raise Unavailable("message broker unavailable")

    async def broken() -> None:
        raise KeyError("a bug")

    async def after() -> None:
        ran.append("after")

    hooks.before += [binding, broken, lost, after]
    await hooks.run_before()
    assert refused_binding.calls == 2  # the refusal was retried
    assert ran == ["bound", "after"]  # neither a bug nor a lost link stops the hooks after it
