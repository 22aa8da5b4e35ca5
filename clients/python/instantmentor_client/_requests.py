"""Request/reply plumbing: a fresh ``ref`` per request, the futures waiting for their ``ack`` /
``error`` / ``pong``, waiting for a connection, the overall timeout and the resend of
idempotent requests after a lost connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from instantmentor_client._transport import ConnectionClosed, Socket
from instantmentor_client.errors import (
    ClientClosed,
    ConnectionLost,
    InstantMentorError,
    NotConnected,
    RequestTimeout,
    error_from_frame,
)

log = logging.getLogger("instantmentor_client")


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    generation: int
    event: str


class RequestReply:
    """Mixin of :class:`~instantmentor_client.client.InstantMentorClient`: sends requests and
    matches replies to them. State is set up by the client's ``__init__``; the connection
    state (``_ws``, ``_generation``...) is maintained by the connection supervisor."""

    request_timeout: float
    _ws: Socket | None
    _generation: int
    _started: bool
    _closed: bool
    _fatal: InstantMentorError | None
    _changed: asyncio.Event
    _pending: dict[str, _Pending]
    _ref_prefix: str
    _refs: itertools.count[int]

    # -- requests: generic ---------------------------------------------------------------

    async def request(
        self,
        event: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        """Send any client event; return its ``ack`` data (``pong`` data for ``ping``).

        ``retry``: resend on the next connection if the connection drops before the reply
        (only for idempotent events). Raises as described in the docstring of
        :mod:`instantmentor_client.client`.
        """
        loop = asyncio.get_running_loop()
        limit = self.request_timeout if timeout is None else timeout
        deadline = loop.time() + limit
        body = {"event": event, "data": dict(data or {})}
        stale: int | None = None
        while True:
            ws, generation = await self._wait_connected(deadline, event, stale)
            ref = f"{self._ref_prefix}{next(self._refs)}"
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[ref] = _Pending(future, generation, event)
            try:
                try:
                    await ws.send(encode_frame({**body, "ref": ref}))
                except ConnectionClosed:
                    stale = generation  # not sent: wait for the next connection
                    continue
                try:
                    return await asyncio.wait_for(future, max(deadline - loop.time(), 0.0))
                except TimeoutError:
                    raise RequestTimeout(
                        f"no reply to {event} within {limit:g}s", event=event
                    ) from None
                except ConnectionLost:
                    if retry and loop.time() < deadline:
                        stale = generation
                        continue
                    raise
            finally:
                self._pending.pop(ref, None)

    # -- internals -----------------------------------------------------------------------

    def _settle_reply(self, name: str, ref: str, data: dict[str, Any]) -> None:
        """Resolve the request waiting for ``ref`` with an ``ack``/``pong`` (``name``) or
        ``error`` frame's data."""
        pending = self._pending.get(ref)
        if pending is not None and not pending.future.done():
            if name == "error":
                pending.future.set_exception(error_from_frame(data))
            else:
                pending.future.set_result(data)
        elif name == "error":
            log.info("error for a request no longer waited for: %s", data)

    async def _wait_connected(
        self, deadline: float, event: str | None, stale: int | None = None
    ) -> tuple[Socket, int]:
        """The live connection (not generation ``stale``), waiting until ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise self._closed_error(event)
            if self._ws is not None and self._generation != stale:
                return self._ws, self._generation
            if not self._started:
                raise NotConnected("not connected: call connect() first", event=event)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotConnected("no connection to the server within the timeout", event=event)
            changed = self._changed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _signal(self) -> None:
        """Wake everything waiting for a state change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _closed_error(self, event: str | None) -> InstantMentorError:
        fatal = self._fatal or ClientClosed("the client is closed")
        return type(fatal)(fatal.message, code=fatal.code, event=event)

    def _fail_pending(
        self,
        which: Callable[[_Pending], bool],
        error: Callable[[_Pending], InstantMentorError] | None = None,
    ) -> None:
        for pending in list(self._pending.values()):
            if which(pending) and not pending.future.done():
                exc = error(pending) if error else self._closed_error(pending.event)
                pending.future.set_exception(exc)


def encode_frame(frame: Mapping[str, Any]) -> str:
    """A frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
