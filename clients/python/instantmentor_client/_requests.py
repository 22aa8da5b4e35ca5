"""Request/reply: a fresh ``ref`` per request, the futures waiting for their ``ack`` /
``error`` / ``pong``, waiting for a connection, the overall timeout and the resend of
idempotent requests after a lost connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from instantmentor_client._link import Link
from instantmentor_client._transport import ConnectionClosed
from instantmentor_client.errors import (
    ConnectionLost,
    InstantMentorError,
    RequestTimeout,
    error_from_frame,
)

log = logging.getLogger("instantmentor_client")


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    generation: int
    event: str


class Requests:
    """Sends requests on the link's socket and matches replies to them by ``ref``."""

    def __init__(self, link: Link, request_timeout: float) -> None:
        self.link = link
        self.request_timeout = request_timeout
        self._pending: dict[str, _Pending] = {}
        self._ref_prefix = secrets.token_hex(3) + "-"
        self._refs = itertools.count(1)

    def ref(self, kind: str = "") -> str:
        """A ref no other frame of this client uses (``kind`` tells what it is for)."""
        return f"{self._ref_prefix}{kind}{next(self._refs)}"

    async def request(
        self,
        event: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        """What ``client.request`` does (see :meth:`ApiMethods.request`)."""
        loop = asyncio.get_running_loop()
        limit = self.request_timeout if timeout is None else timeout
        deadline = loop.time() + limit
        body = {"event": event, "data": dict(data or {})}
        stale: int | None = None
        while True:
            ws, generation = await self.link.wait_connected(deadline, event, stale)
            ref = self.ref()
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

    def settle(self, name: str, ref: str, data: dict[str, Any]) -> None:
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

    def connection_lost(self, generation: int) -> None:
        """Fail the requests sent on connection ``generation`` (a retrying one resends)."""
        self._fail(
            lambda p: p.generation == generation,
            lambda p: ConnectionLost(
                f"connection lost before the reply to {p.event}", event=p.event
            ),
        )

    def end(self) -> None:
        """Fail every waiting request with the link's end."""
        self._fail(lambda p: True, lambda p: self.link.closed_error(p.event))

    def _fail(
        self,
        which: Callable[[_Pending], bool],
        error: Callable[[_Pending], InstantMentorError],
    ) -> None:
        for pending in list(self._pending.values()):
            if which(pending) and not pending.future.done():
                pending.future.set_exception(error(pending))


def encode_frame(frame: Mapping[str, Any]) -> str:
    """A frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
