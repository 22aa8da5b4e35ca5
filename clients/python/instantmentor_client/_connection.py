"""Keeping the session's connection alive.

One supervisor task per client serves the current connection — a reader task routing frames
(replies to their requests, pushes to delivery and dispatch) and a heartbeat task that pings
and declares the connection dead when nothing comes back in time — and, when it ends,
reconnects with exponential backoff and full jitter, until it succeeds, the token is refused,
``max_reconnect_attempts`` is reached or the client closes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from instantmentor_client import _transport
from instantmentor_client._delivery import ChatDelivery
from instantmentor_client._handshake import (
    CLOSE_UNAUTHORIZED,
    TokenProvider,
    open_connection,
    resolve_token,
)
from instantmentor_client._monitoring import ReconnectAttempt
from instantmentor_client._requests import encode_frame
from instantmentor_client._transport import ConnectionClosed, Socket
from instantmentor_client.errors import (
    AuthenticationFailed,
    ClientClosed,
    ConnectionLost,
    InstantMentorError,
    InternalError,
    NotConnected,
    ProtocolViolation,
    ServerBusy,
)
from instantmentor_client.models import Event, Session
from instantmentor_client.reliability import Backoff

log = logging.getLogger("instantmentor_client")


class ConnectionSupervisor(ChatDelivery):
    """Mixin of :class:`~instantmentor_client.client.InstantMentorClient`: opens, serves,
    watches and replaces the connection. State is set up by the client's ``__init__``;
    ``connect()`` starts :meth:`_supervise` and ``close()`` stops it."""

    url: str
    connect_timeout: float
    _token: str | None
    _token_provider: TokenProvider | None
    _max_frame_bytes: int | None
    _reconnect: bool
    _backoff: Backoff
    _max_attempts: int | None
    _on_reconnect_attempt: Callable[[ReconnectAttempt], None] | None
    _heartbeat_interval: float | None
    _heartbeat_timeout: float | None
    _closing: bool
    _rx: asyncio.Event
    _acker: asyncio.Task[None] | None

    # -- one connection ------------------------------------------------------------------

    async def _open(self) -> tuple[Socket, dict[str, Any]]:
        """One connection attempt: socket + ``connected`` frame."""
        token = await resolve_token(self._token, self._token_provider)
        return await open_connection(
            self.url,
            token,
            connect_timeout=self.connect_timeout,
            max_frame_bytes=self._max_frame_bytes,
        )

    def _activate(self, ws: Socket, data: dict[str, Any]) -> None:
        self._generation += 1
        self._ws = ws
        self._session = Session.from_dict(data)
        self.stats.connections += 1
        self._emit(Event("connected", data))
        self._signal()
        log.info(
            "connected as %s (connection %s)", self._session.user_id, self._session.connection_id
        )
        if len(self._tracker):
            self._spawn(self._resync())
        if self.auto_ack_delivery:
            self._ack_wakeup.set()

    def _deactivate(self, ws: Socket, reason: BaseException | None) -> None:
        generation = self._generation
        self._ws = None
        self._fail_pending(
            lambda p: p.generation == generation,
            lambda p: ConnectionLost(
                f"connection lost before the reply to {p.event}", event=p.event
            ),
        )
        closed = reason if isinstance(reason, ConnectionClosed) else None
        code, text = _transport.close_info(closed, ws)
        if isinstance(reason, ConnectionLost):
            text = reason.message
        will_retry = self._reconnect and not self._closing and code != CLOSE_UNAUTHORIZED
        self._emit(
            Event("disconnected", {"code": code, "reason": text, "reconnecting": will_retry})
        )
        self._signal()
        log.info("disconnected (%s %s)", code, text)

    # -- serving and reconnecting --------------------------------------------------------

    async def _supervise(self, ws: Socket) -> None:
        """Serve the connection; when it ends, reconnect (with backoff) and serve again."""
        try:
            while True:
                reason: BaseException | None = None
                try:
                    reason = await self._serve(ws)
                finally:
                    self._deactivate(ws, reason)
                if self._closing:
                    return
                code, text = _transport.close_info(
                    reason if isinstance(reason, ConnectionClosed) else None, ws
                )
                if code == CLOSE_UNAUTHORIZED:
                    self._shut(AuthenticationFailed(text or "the server refused the token"))
                    return
                if not self._reconnect:
                    self._shut(ClientClosed("the connection was lost and reconnect is off"))
                    return
                opened = await self._reconnect_with_backoff(reason)
                if opened is None:
                    return
                ws, data = opened
                if self._closing:  # closed while that attempt succeeded
                    _transport.abort(ws)
                    return
                self._activate(ws, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not leave requests hanging
            log.exception("connection supervisor failed")
            self._shut(InternalError(f"connection supervisor failed: {exc!r}"))

    async def _reconnect_with_backoff(
        self, reason: BaseException | None
    ) -> tuple[Socket, dict[str, Any]] | None:
        error = reason
        for attempt in itertools.count(1):
            # Checked on every turn, not left to cancellation alone: on Python 3.11
            # asyncio.wait_for can swallow a cancel that arrives as its operation finishes.
            if self._closing:
                return None
            if self._max_attempts is not None and attempt > self._max_attempts:
                self._shut(ClientClosed(f"gave up reconnecting after {attempt - 1} attempts"))
                return None
            ceiling = self._backoff.ceiling(attempt)
            delay = self._backoff.delay(attempt)
            hint = _server_hint(error)
            if hint is not None:  # the server said when to come back: never sooner
                ceiling = hint * (1 + HINT_JITTER)
                delay = random.uniform(hint, ceiling)
            self.stats.reconnect_attempts += 1
            if self._on_reconnect_attempt is not None:
                try:
                    self._on_reconnect_attempt(ReconnectAttempt(attempt, delay, ceiling, error))
                except Exception:
                    log.exception("on_reconnect_attempt hook failed")
            log.info("reconnect attempt %d in %.2fs (%r)", attempt, delay, error)
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except AuthenticationFailed as exc:
                self._shut(exc)
                return None
            except (NotConnected, ProtocolViolation) as exc:
                error = exc
        return None  # unreachable: itertools.count never ends

    async def _serve(self, ws: Socket) -> BaseException | None:
        """Read until the connection ends or the heartbeat finds it dead; return why."""
        reader = asyncio.create_task(self._read_loop(ws), name="im-reader")
        heart = asyncio.create_task(self._heartbeat(ws), name="im-heartbeat")
        try:
            done, _ = await asyncio.wait({reader, heart}, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done and heart.result():
                self.stats.dead_connections += 1
                _transport.abort(ws)
                return ConnectionLost("no frame from the server within the heartbeat deadline")
            return await reader
        finally:
            for task in (reader, heart):
                task.cancel()
            await asyncio.gather(reader, heart, return_exceptions=True)

    async def _read_loop(self, ws: Socket) -> BaseException | None:
        try:
            async for raw in ws:
                self._on_frame(raw)
        except ConnectionClosed as exc:
            return exc
        return None

    async def _heartbeat(self, ws: Socket) -> bool:
        """Ping every interval; ``True`` when no frame at all came within the timeout after a
        ping (dead connection). ``False`` when sending failed (the reader sees the close)."""
        assert self._session is not None
        interval = self._heartbeat_interval or float(self._session.heartbeat_interval_s) or 20.0
        patience = self._heartbeat_timeout or interval
        beats = itertools.count(1)
        while True:
            await asyncio.sleep(interval)
            self._rx.clear()
            try:
                await asyncio.wait_for(
                    ws.send(
                        encode_frame({"event": "ping", "ref": f"{self._ref_prefix}hb{next(beats)}"})
                    ),
                    patience,
                )
                await asyncio.wait_for(self._rx.wait(), patience)
            except TimeoutError:
                log.warning("no frame within %.1fs after a ping: connection is dead", patience)
                return True
            except ConnectionClosed:
                return False

    def _on_frame(self, raw: str | bytes) -> None:
        """Route one frame: replies to their requests, ``message_received`` through the
        delivery bookkeeping, other pushes to dispatch."""
        self._rx.set()
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("ignoring a frame that is not JSON: %.200r", raw)
            return
        if not isinstance(frame, dict):
            return
        name = frame.get("event")
        data = frame.get("data")
        data = data if isinstance(data, dict) else {}
        ref = frame.get("ref")
        if name in ("ack", "error", "pong") and isinstance(ref, str):
            self._settle_reply(name, ref, data)
            return
        if not isinstance(name, str) or name in ("ack", "pong"):
            return
        if name == "message_received":
            self._on_message(data)
        else:
            self._emit(Event(name, data))

    # -- the end -------------------------------------------------------------------------

    def _shut(self, error: InstantMentorError) -> None:
        """End the client for good from inside (auth refused, reconnect off, gave up)."""
        log.warning("client closed: %s", error)
        self._closed = True
        self._fatal = error
        self._fail_pending(lambda p: True)
        self._emit(Event("closed", {"code": error.code, "reason": error.message}))
        self._signal()
        me = asyncio.current_task()
        for task in [self._acker, self._gap_task, *self._background]:
            if task is not None and task is not me:
                task.cancel()
        self._dispatch.put_nowait(None)


# A server's retry_after_ms is honoured with up to this much more, at random: clients
# refused together must not all come back in the same instant.
HINT_JITTER = 0.5


def _server_hint(error: BaseException | None) -> float | None:
    """Seconds the server asked us to wait before reconnecting (close 1013), if it did."""
    if isinstance(error, ServerBusy):
        return error.retry_after_s
    if isinstance(error, ConnectionClosed):
        return _transport.retry_after_s(*_transport.close_info(error))
    return None
