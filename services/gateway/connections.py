"""The connections a gateway holds, and how frames are written to each."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from services.gateway import metrics
from services.gateway.ratelimit import TokenBucket
from shared.auth import Identity

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
SEND_TIMEOUT_S = 10.0  # a frame the client's TCP window does not take by then: dead client


class SlowConsumer(Exception):
    """The client does not read its frames fast enough."""


@dataclass(eq=False)
class Connection:
    """One WebSocket. Frames are queued and written by :meth:`write_loop` in order."""

    websocket: WebSocket
    identity: Identity
    limiter: TokenBucket
    queue_limit: int
    user_limiter: TokenBucket | None = None  # shared by the user's connections here
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    send_timeout_s: float = SEND_TIMEOUT_S
    _outbox: asyncio.Queue[str | int | None] = field(default_factory=asyncio.Queue)
    _closing: bool = False
    _followups: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _writable: asyncio.Event = field(default_factory=asyncio.Event)

    def start_writing(self) -> None:
        """Let the writer go: frames queued so far (``connected`` first) go out in order."""
        self._writable.set()

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def may_send(self) -> bool:
        """Take one event from this connection's budget and, when there is one, from the
        budget its user shares over all their connections here."""
        return self.limiter.allow() and (self.user_limiter is None or self.user_limiter.allow())

    def send(self, text: str) -> None:
        """Queue one frame (JSON text). Never blocks. Raises :class:`SlowConsumer` when the
        client has ``queue_limit`` frames unread; frames for a closing connection are dropped."""
        if self._closing:
            return
        if self._outbox.qsize() >= self.queue_limit:
            raise SlowConsumer(self.id)
        self._outbox.put_nowait(text)

    def replace_followup(self, key: str, after_s: float, frame: str | None) -> None:
        """Cancel what is pending under ``key``; with a ``frame``, send it after ``after_s``
        unless replaced again first (see :class:`shared.runtime.outbox.Followup`)."""
        pending = self._followups.pop(key, None)
        if pending is not None:
            pending.cancel()
        if frame is not None and not self._closing:
            loop = asyncio.get_running_loop()
            self._followups[key] = loop.call_later(after_s, self._fire_followup, key, frame)

    def _fire_followup(self, key: str, frame: str) -> None:
        self._followups.pop(key, None)
        try:
            self.send(frame)
        except SlowConsumer:
            pass  # the writer is already cutting this client off

    def _cancel_followups(self) -> None:
        for pending in self._followups.values():
            pending.cancel()
        self._followups.clear()

    def finish(self) -> None:
        """Let the writer end after the frames already queued."""
        self._cancel_followups()
        self._outbox.put_nowait(None)
        self._writable.set()

    def close_after_queued(self, code: int) -> None:
        """Close the socket with ``code`` once the frames already queued are written."""
        if not self._closing:
            self._closing = True
            self._outbox.put_nowait(code)

    def abort(self, code: int) -> None:
        """Close the socket with ``code`` now, dropping the frames not yet written."""
        self._closing = True
        self._cancel_followups()
        self._writable.set()
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self._outbox.put_nowait(code)

    async def write_loop(self) -> None:
        """Write queued frames until :meth:`finish`, a close request, or a dead socket."""
        try:
            await self._writable.wait()
            while True:
                item = await self._outbox.get()
                if item is None:
                    return
                if isinstance(item, int):
                    await asyncio.wait_for(self.websocket.close(item), self.send_timeout_s)
                    return
                async with asyncio.timeout(self.send_timeout_s):  # no task per frame
                    await self.websocket.send_text(item)
                metrics.FRAMES_OUT.inc()
        except (OSError, RuntimeError, TimeoutError) as exc:  # the socket went away under us
            log.debug("writer of %s stopped: %r", self.id, exc)


class Registry:
    """Connections by id and by user, kept in step with the gauges."""

    def __init__(self) -> None:
        self._by_id: dict[str, Connection] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._user_limiters: dict[str, TokenBucket] = {}

    def user_limiter(self, user_id: str, make: Callable[[], TokenBucket]) -> TokenBucket:
        """The rate budget of ``user_id`` over all their connections here (kept while they
        have one, so reconnecting does not refill it)."""
        limiter = self._user_limiters.get(user_id)
        if limiter is None:
            limiter = self._user_limiters[user_id] = make()
        return limiter

    def add(self, connection: Connection) -> None:
        self._by_id[connection.id] = connection
        self._by_user.setdefault(connection.user_id, set()).add(connection)
        self._update_gauges()

    def remove(self, connection: Connection) -> None:
        self._by_id.pop(connection.id, None)
        siblings = self._by_user.get(connection.user_id)
        if siblings is not None:
            siblings.discard(connection)
            if not siblings:
                del self._by_user[connection.user_id]
                self._user_limiters.pop(connection.user_id, None)
        self._update_gauges()

    def _update_gauges(self) -> None:
        metrics.CONNECTIONS.set(len(self._by_id))
        metrics.USERS.set(len(self._by_user))

    def get(self, connection_id: str) -> Connection | None:
        return self._by_id.get(connection_id)

    def count_of(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def of_user(self, user_id: str) -> frozenset[Connection]:
        return frozenset(self._by_user.get(user_id, ()))

    def has_user(self, user_id: str) -> bool:
        return user_id in self._by_user

    def users(self) -> list[str]:
        return list(self._by_user)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
