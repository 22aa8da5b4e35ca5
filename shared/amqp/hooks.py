"""What a process does each time its broker connection comes back: restore what the broker
lost (bindings, then the facts the services need again).

Hooks of the first kind run before the connection counts as connected, one after the other.
Hooks of the second kind run once publishing works again, in a task of their own, so the
connection's own recovery never waits for them. Right after a node dies, the broker may
still refuse a message (a replicated queue electing its new leader) or a binding, so a hook
that meets :class:`Unavailable` is run again, after a growing pause, for as long as the
connection lasts. If it is lost meanwhile, the next reconnection runs every hook again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shared.errors import Unavailable

log = logging.getLogger(__name__)

ReconnectHook = Callable[[], Awaitable[None]]
FIRST_PAUSE_S = 0.2
LONGEST_PAUSE_S = 2.0


async def run_until_done(
    hook: ReconnectHook,
    connected: Callable[[], bool],
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Run ``hook`` until it succeeds (True), or until it failed while the connection is
    gone or for another reason than the broker being unable to take a message (False)."""
    pause_s = FIRST_PAUSE_S
    while True:
        try:
            await hook()
            return True
        except Unavailable as exc:
            if not connected():
                log.warning("reconnect hook stopped: the connection went again (%s)", exc)
                return False
            log.warning("reconnect hook refused (%s); again in %.1f s", exc, pause_s)
        except Exception:
            log.exception("reconnect hook failed")
            return False
        await pause(pause_s)
        pause_s = min(pause_s * 2, LONGEST_PAUSE_S)


class ReconnectHooks:
    """The hooks of one connection, of both kinds, and the task running the second kind."""

    def __init__(self, link_up: Callable[[], bool], connected: Callable[[], bool]) -> None:
        self._link_up = link_up  # the connection is open (the first kind runs)
        self._connected = connected  # and counts as connected (the second kind runs)
        self.before: list[ReconnectHook] = []  # publishing is not possible yet
        self.after: list[ReconnectHook] = []  # once publishing works again
        self._after_task: asyncio.Task[None] | None = None

    async def run_before(self) -> None:
        for hook in self.before:
            await run_until_done(hook, self._link_up)

    def start_after(self) -> None:
        """Start the hooks of the second kind (giving up those of an earlier reconnection)."""
        self.cancel()
        if self.after:
            self._after_task = asyncio.get_running_loop().create_task(self._run_after())

    async def _run_after(self) -> None:
        for hook in self.after:
            await run_until_done(hook, self._connected)

    def cancel(self) -> None:
        if self._after_task is not None:
            self._after_task.cancel()
            self._after_task = None
