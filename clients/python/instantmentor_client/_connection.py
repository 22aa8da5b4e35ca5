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
from dataclasses import dataclass
from typing import Any

from instantmentor_client import _transport
from instantmentor_client._delivery import Delivery
from instantmentor_client._dispatch import Dispatcher
from instantmentor_client._handshake import (
    CLOSE_UNAUTHORIZED,
    TokenProvider,
    open_connection,
    resolve_token,
)
from instantmentor_client._link import Link
from instantmentor_client._monitoring import ClientStats, ReconnectAttempt
from instantmentor_client._requests import Requests, encode_frame
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


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to connect and stay connected (see the client's parameters)."""

    url: str
    token: str | None
    token_provider: TokenProvider | None
    connect_timeout: float
    max_frame_bytes: int | None
    reconnect: bool
    backoff: Backoff
    max_attempts: int | None
    heartbeat_interval: float | None
    heartbeat_timeout: float | None
    on_reconnect_attempt: Callable[[ReconnectAttempt], None] | None


@dataclass(eq=False)
class Supervisor:
    """Opens, serves, watches and replaces the link's connection: one task (:meth:`run`)
    per client, from the first connection to the end."""

    options: ConnectOptions
    link: Link
    requests: Requests
    delivery: Delivery
    dispatcher: Dispatcher
    stats: ClientStats

    # -- one connection ------------------------------------------------------------------

    async def open(self) -> tuple[Socket, dict[str, Any]]:
        """One connection attempt: socket + ``connected`` frame."""
        o = self.options
        token = await resolve_token(o.token, o.token_provider)
        return await open_connection(
            o.url, token, connect_timeout=o.connect_timeout, max_frame_bytes=o.max_frame_bytes
        )

    def activate(self, ws: Socket, data: dict[str, Any]) -> None:
        session = Session.from_dict(data)
        self.link.connected(ws, session)
        self.stats.connections += 1
        self.dispatcher.emit(Event("connected", data))
        log.info("connected as %s (connection %s)", session.user_id, session.connection_id)
        self.delivery.on_connected()

    def _deactivate(self, ws: Socket, reason: BaseException | None) -> None:
        generation = self.link.generation
        self.link.lost()
        self.requests.connection_lost(generation)
        closed = reason if isinstance(reason, ConnectionClosed) else None
        code, text = _transport.close_info(closed, ws)
        if isinstance(reason, ConnectionLost):
            text = reason.message
        will_retry = self.options.reconnect and not self.link.ending and code != CLOSE_UNAUTHORIZED
        self.dispatcher.emit(
            Event("disconnected", {"code": code, "reason": text, "reconnecting": will_retry})
        )
        log.info("disconnected (%s %s)", code, text)

    # -- serving and reconnecting --------------------------------------------------------

    async def run(self, ws: Socket) -> None:
        """Serve the connection; when it ends, reconnect (with backoff) and serve again."""
        try:
            while True:
                reason: BaseException | None = None
                try:
                    reason = await self._serve(ws)
                finally:
                    self._deactivate(ws, reason)
                if self.link.ending:
                    return
                code, text = _transport.close_info(
                    reason if isinstance(reason, ConnectionClosed) else None, ws
                )
                if code == CLOSE_UNAUTHORIZED:
                    self.shut(AuthenticationFailed(text or "the server refused the token"))
                    return
                if not self.options.reconnect:
                    self.shut(ClientClosed("the connection was lost and reconnect is off"))
                    return
                opened = await self._reconnect_with_backoff(reason)
                if opened is None:
                    return
                ws, data = opened
                if self.link.ending:  # closed while that attempt succeeded
                    _transport.abort(ws)
                    return
                self.activate(ws, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not leave requests hanging
            log.exception("connection supervisor failed")
            self.shut(InternalError(f"connection supervisor failed: {exc!r}"))

    async def _reconnect_with_backoff(
        self, reason: BaseException | None
    ) -> tuple[Socket, dict[str, Any]] | None:
        o = self.options
        error = reason
        for attempt in itertools.count(1):
            # Checked on every turn, not left to cancellation alone: on Python 3.11
            # asyncio.wait_for can swallow a cancel that arrives as its operation finishes.
            if self.link.ending:
                return None
            if o.max_attempts is not None and attempt > o.max_attempts:
                self.shut(ClientClosed(f"gave up reconnecting after {attempt - 1} attempts"))
                return None
            ceiling = o.backoff.ceiling(attempt)
            delay = o.backoff.delay(attempt)
            hint = _server_hint(error)
            if hint is not None:  # the server said when to come back: never sooner
                ceiling = hint * (1 + HINT_JITTER)
                delay = random.uniform(hint, ceiling)
            self.stats.reconnect_attempts += 1
            if o.on_reconnect_attempt is not None:
                try:
                    o.on_reconnect_attempt(ReconnectAttempt(attempt, delay, ceiling, error))
                except Exception:
                    log.exception("on_reconnect_attempt hook failed")
            log.info("reconnect attempt %d in %.2fs (%r)", attempt, delay, error)
            await asyncio.sleep(delay)
            try:
                return await self.open()
            except AuthenticationFailed as exc:
                self.shut(exc)
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
        session = self.link.session
        assert session is not None
        o = self.options
        interval = o.heartbeat_interval or float(session.heartbeat_interval_s) or 20.0
        patience = o.heartbeat_timeout or interval
        received = self.link.received
        while True:
            await asyncio.sleep(interval)
            received.clear()
            try:
                ping = encode_frame({"event": "ping", "ref": self.requests.ref("hb")})
                await asyncio.wait_for(ws.send(ping), patience)
                await asyncio.wait_for(received.wait(), patience)
            except TimeoutError:
                log.warning("no frame within %.1fs after a ping: connection is dead", patience)
                return True
            except ConnectionClosed:
                return False

    def _on_frame(self, raw: str | bytes) -> None:
        """Route one frame: replies to their requests, ``message_received`` through the
        delivery bookkeeping, other pushes to dispatch."""
        self.link.received.set()
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
            self.requests.settle(name, ref, data)
            return
        if not isinstance(name, str) or name in ("ack", "pong"):
            return
        if name == "message_received":
            self.delivery.on_push(data)
        else:
            self.dispatcher.emit(Event(name, data))

    # -- the end -------------------------------------------------------------------------

    def shut(self, error: InstantMentorError) -> None:
        """End the client for good from inside (auth refused, reconnect off, gave up)."""
        log.warning("client closed: %s", error)
        self.link.closed(error)
        self.requests.end()
        self.dispatcher.emit(Event("closed", {"code": error.code, "reason": error.message}))
        me = asyncio.current_task()
        for task in self.delivery.tasks():
            if task is not me:
                task.cancel()
        self.dispatcher.finish()


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
