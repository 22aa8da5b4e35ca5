"""One client connection at the gateway: its socket, and how frames are written to it (queued,
in order, bounded; a client that does not read is dropped)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.gateway import metrics
from services.gateway.ratelimit import TokenBucket
from services.gateway.wire import PREBUILT_FRAMES, OutgoingFrame, WritePrebuilt
from shared.auth import Identity
from shared.protocol.envelope import CLOSE_TOO_MANY_CONNECTIONS

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = CLOSE_TOO_MANY_CONNECTIONS
SEND_TIMEOUT_S = 10.0  # a frame the client's TCP window does not take by then: dead client


@dataclass(frozen=True, slots=True)
class Close:
    """The last item of a connection's queue: close with this code and reason."""

    code: int
    reason: str = ""


class FrameSocket(Protocol):
    """What a connection writes its frames to: a Starlette ``WebSocket`` for ``/ws``, or a
    Socket.IO client (:class:`services.gateway.socketio_binding.SocketIOClient`). ``scope``
    offers :data:`PREBUILT_FRAMES` where the socket can take them."""

    scope: MutableMapping[str, Any]

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class SlowConsumer(Exception):
    """The client does not read its frames fast enough."""


class Connection:
    """One client socket. Frames are queued and written in order by a writer task that exists
    only while there is something to write: an idle connection holds no task, no queue
    object and no event, which is most of what a connection costs (PROTOCOL targets
    thousands per gateway). :attr:`ended` is done once the socket is closed, broken, or
    :meth:`finish` let the last queued frame out."""

    __slots__ = (
        "socket",
        "identity",
        "limiter",
        "user_limiter",
        "queue_limit",
        "send_timeout_s",
        "id",
        "ended",
        "_outbox",
        "_writable",
        "_closing",
        "_finished",
        "_writer",
        "_followups",
        "_write_prebuilt",
    )

    def __init__(
        self,
        socket: FrameSocket,
        identity: Identity,
        limiter: TokenBucket,
        queue_limit: int,
        user_limiter: TokenBucket | None = None,  # shared by the user's connections here
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self.socket = socket
        self.identity = identity
        self.limiter = limiter
        self.user_limiter = user_limiter
        self.queue_limit = queue_limit
        self.send_timeout_s = send_timeout_s
        self.id = uuid.uuid4().hex
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox: deque[str | Close] = deque()  # frames, and a close as the last item
        self._writable = False
        self._closing = False
        self._finished = False
        self._writer: asyncio.Task[None] | None = None
        self._followups: dict[str, asyncio.TimerHandle] | None = None
        prebuilt = socket.scope.get("extensions", {}).get(PREBUILT_FRAMES)
        self._write_prebuilt: WritePrebuilt | None = prebuilt["write"] if prebuilt else None

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def may_send(self) -> bool:
        """Take one event from this connection's budget and, when there is one, from the
        budget its user shares over all their connections here."""
        return self.limiter.allow() and (self.user_limiter is None or self.user_limiter.allow())

    # -- queueing ------------------------------------------------------------------------

    def start_writing(self) -> None:
        """Let the writer go: frames queued so far (``connected`` first) go out in order."""
        self._writable = True
        self._kick()

    def send(self, frame: str | OutgoingFrame) -> None:
        """Queue one frame (JSON text; an :class:`OutgoingFrame` when the same frame goes to
        many sockets). Never blocks. Raises :class:`SlowConsumer` when the client has
        ``queue_limit`` frames unread; frames for a closing connection are dropped."""
        if self._closing or self._finished:
            return
        if self._writable and self._writer is None and not self._outbox:
            if self._write_prebuilt is not None:
                wire = frame.wire if isinstance(frame, OutgoingFrame) else OutgoingFrame(frame).wire
                if self._write_prebuilt(wire):  # the common case: nothing waits before it
                    metrics.FRAMES_OUT.inc()
                    return
            else:
                self._write_now(frame if isinstance(frame, str) else frame.text)
                return
        if len(self._outbox) >= self.queue_limit:
            raise SlowConsumer(self.id)
        self._outbox.append(frame if isinstance(frame, str) else frame.text)
        self._kick()

    def close_after_queued(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code`` once the frames already queued are written."""
        if not self._closing:
            self._closing = True
            self._outbox.append(Close(code, reason))
            self._kick()

    def abort(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code`` now, dropping the frames not yet written."""
        self._closing = True
        self._cancel_followups()
        self._outbox.clear()
        self._outbox.append(Close(code, reason))
        self._writable = True
        self._kick()

    def finish(self) -> None:
        """No more frames: :attr:`ended` once those already queued are written."""
        self._finished = True
        self._cancel_followups()
        self._writable = True
        self._kick()
        if self._writer is None and not self._outbox:
            self._end()

    async def wait_ended(self, timeout_s: float) -> None:
        """Wait for :attr:`ended`; past ``timeout_s`` stop writing (the client is stuck)."""
        await asyncio.wait({self.ended}, timeout=timeout_s)
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._end()

    # -- follow-ups ----------------------------------------------------------------------

    def replace_followup(self, key: str, after_s: float, frame: str | None) -> None:
        """Cancel what is pending under ``key``; with a ``frame``, send it after ``after_s``
        unless replaced again first (see :class:`shared.runtime.outbox.Followup`)."""
        followups = self._followups
        pending = followups.pop(key, None) if followups else None
        if pending is not None:
            pending.cancel()
        if frame is not None and not self._closing and not self._finished:
            if followups is None:
                followups = self._followups = {}
            loop = asyncio.get_running_loop()
            followups[key] = loop.call_later(after_s, self._fire_followup, key, frame)

    def _fire_followup(self, key: str, frame: str) -> None:
        if self._followups:
            self._followups.pop(key, None)
        try:
            self.send(frame)
        except SlowConsumer:
            pass  # the writer is already cutting this client off

    def _cancel_followups(self) -> None:
        if self._followups:
            for pending in self._followups.values():
                pending.cancel()
        self._followups = None

    # -- writing -------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._writable and self._writer is None and self._outbox and not self.ended.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def _write_now(self, text: str) -> None:
        """Write one frame without a task when the socket takes it at once, as it does
        unless the client's TCP window is full (sockets without prebuilt frames: with
        compression, and Socket.IO clients): no task, no timer and no loop turn per
        connection. When the send has to wait, a writer task finishes it (within the send
        timeout), then the queue."""
        sending = self.socket.send_text(text)
        try:
            waiting_for = sending.send(None)
        except StopIteration:
            metrics.FRAMES_OUT.inc()
            return
        except Exception as exc:  # the socket went away under us
            log.debug("write to %s failed: %r", self.id, exc)
            self._end()
            return
        resumed = _Resumed(sending, waiting_for)
        self._writer = asyncio.get_running_loop().create_task(self._drain(resumed))

    async def _drain(self, started: Awaitable[None] | None = None) -> None:
        """Write what is queued, then stop (a later frame starts a new writer)."""
        try:
            if started is not None:
                async with asyncio.timeout(self.send_timeout_s):
                    await started
                metrics.FRAMES_OUT.inc()
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, Close):
                    closing = self.socket.close(item.code, reason=item.reason or None)
                    await asyncio.wait_for(closing, self.send_timeout_s)
                    self._end()
                    return
                async with asyncio.timeout(self.send_timeout_s):
                    await self.socket.send_text(item)
                metrics.FRAMES_OUT.inc()
        except Exception as exc:  # the socket went away under us (Starlette: a disconnect)
            log.debug("writer of %s stopped: %r", self.id, exc)
            self._end()
            return
        finally:
            self._writer = None
        if self._finished:
            self._end()

    def _end(self) -> None:
        self._closing = True
        self._outbox.clear()
        if not self.ended.done():
            self.ended.set_result(None)


class _Resumed:
    """Awaits the rest of a coroutine that was started by hand and is waiting for
    ``waiting_for`` (what it yielded): what ``yield from`` does, so that a task can finish it."""

    __slots__ = ("_coroutine", "_waiting_for")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        self._coroutine = coroutine
        self._waiting_for = waiting_for

    def __await__(self) -> Generator[Any, Any, None]:
        waiting_for = self._waiting_for
        while True:
            try:
                sent = yield waiting_for
            except BaseException as exc:  # a cancel or timeout: into the coroutine with it
                try:
                    waiting_for = self._coroutine.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                waiting_for = self._coroutine.send(sent)
            except StopIteration:
                return
