"""The ``/ws`` endpoint (PROTOCOL §1–2): authenticate, greet, then relay frames both ways."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway import metrics
from services.gateway.connect_gate import ConnectGate, Ticket
from services.gateway.connections import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    Connection,
    Registry,
    SlowConsumer,
)
from services.gateway.frames import FrameError, parse_frame, salvage_ref_and_event
from services.gateway.ratelimit import TokenBucket
from services.gateway.router import Router
from shared.auth import bearer_token, verify_token
from shared.clock import iso
from shared.errors import AuthError, RateLimited, Unavailable
from shared.logs import connection_id_var, user_id_var
from shared.protocol.envelope import (
    TOO_MANY_CONNECTIONS,
    dumps,
    error_frame,
    loads,
    push_frame,
)
from shared.protocol.registry import GATEWAY
from shared.settings import Settings

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CLOSE_TIMEOUT_S = 5.0  # for the frames still queued when a connection ends
MAX_UNCONFIRMED = 16  # commands of one connection handed on before the broker confirmed them


class SocketHandler:
    """Runs every WebSocket of one gateway process."""

    def __init__(self, settings: Settings, registry: Registry, router: Router) -> None:
        self.settings = settings
        self.gate = ConnectGate(settings.max_pending_connects)
        self.stopping = False
        self.registry = registry
        self.router = router
        self._handlers: set[asyncio.Task[None]] = set()

    async def serve(self, websocket: WebSocket) -> None:
        if self.stopping:  # a client reconnecting at once must go to another gateway
            await websocket.accept()
            await websocket.close(CLOSE_SERVICE_RESTART, reason="gateway restarting")
            return
        ticket = self.gate.enter()
        if ticket is None:  # a storm: come back later, at the slot given
            retry_ms = self.gate.retry_after_ms()
            metrics.CONNECTS_REFUSED.inc()
            await websocket.accept()
            await websocket.close(CLOSE_TRY_AGAIN, reason=f"server busy; retry_after_ms={retry_ms}")
            return
        try:
            await self._admitted(websocket, ticket)
        finally:
            ticket.done()

    async def _admitted(self, websocket: WebSocket, ticket: Ticket) -> None:
        token = websocket.query_params.get("token") or bearer_token(
            websocket.headers.get("authorization")
        )
        try:
            identity = verify_token(token, self.settings.jwt_secret)
        except AuthError as exc:
            await websocket.accept()
            await websocket.close(CLOSE_UNAUTHORIZED, reason=str(exc)[:120])
            return
        await websocket.accept()
        if not self.router.broker.connected:
            await websocket.close(CLOSE_TRY_AGAIN, reason="broker unavailable, retry later")
            return
        # From here to registry.add (in _run) nothing awaits: two handshakes of one user
        # cannot both slip under the cap.
        if self.registry.count_of(identity.user_id) >= self.settings.max_connections_per_user:
            await websocket.close(CLOSE_TOO_MANY, reason=TOO_MANY_CONNECTIONS)
            return
        s = self.settings
        connection = Connection(
            websocket,
            identity,
            TokenBucket(s.rate_limit_per_s, s.rate_limit_burst),
            queue_limit=s.send_queue_limit,
            user_limiter=self.registry.user_limiter(identity.user_id),
        )
        user_id_var.set(identity.user_id)
        connection_id_var.set(connection.id)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._run(connection, ticket)
        finally:
            self._handlers.discard(task)

    def _connected_frame(self, connection: Connection) -> str:
        identity = connection.identity
        return dumps(
            push_frame(
                "connected",
                {
                    "user_id": identity.user_id,
                    "role": identity.role.value,
                    "name": identity.name,
                    "connection_id": connection.id,
                    "server_time": iso(time.time()),
                    "heartbeat_interval_s": self.settings.heartbeat_interval_s,
                    "protocol_version": PROTOCOL_VERSION,
                },
            )
        )

    async def _run(self, connection: Connection, ticket: Ticket) -> None:
        # `connected` is the first frame queued, but nothing is written until the user is
        # bound here (see _session): pushes that arrive meanwhile wait behind it, in order.
        connection.send(self._connected_frame(connection))
        # The cached snapshot, and registered in the same step: every status broadcast this
        # gateway handles later reaches the connection as an update (no await in between).
        snapshot = self.router.snapshot_frame(connection.identity)
        if snapshot is not None:
            connection.send(snapshot)
        expiry = self._close_at_expiry(connection)
        self.registry.add(connection)
        # This task reads. When the writing side ends the connection first (slow consumer,
        # a close sent, a dead socket), the read is interrupted: a cancel of our own, told
        # apart from one from outside (shutdown) by Task.cancelling().
        reading = asyncio.current_task()
        assert reading is not None

        def stop_reading(_: object) -> None:
            if reading is not None and not reading.done():
                reading.cancel()

        connection.ended.add_done_callback(stop_reading)
        try:
            await self._session(connection, ticket, snapshot_sent=snapshot is not None)
        except asyncio.CancelledError:
            if not connection.ended.done() or reading.cancelling() > 1:
                raise
            reading.uncancel()
        except Exception:
            log.exception("connection handler failed")
        finally:
            connection.ended.remove_done_callback(stop_reading)
            reading = None
            if expiry is not None:
                expiry.cancel()
            self.registry.remove(connection)
            connection.finish()
            await connection.wait_ended(CLOSE_TIMEOUT_S)
            await self._forget(connection)
            log.debug("disconnected")

    @staticmethod
    def _close_at_expiry(connection: Connection) -> asyncio.TimerHandle | None:
        """PROTOCOL v1.1 §1: a socket does not outlive its token (close 4401 at ``exp``)."""
        expires_at = connection.identity.expires_at
        if expires_at is None:
            return None
        return asyncio.get_running_loop().call_later(
            max(0.0, expires_at - time.time()), connection.close_after_queued, CLOSE_UNAUTHORIZED
        )

    async def _session(self, connection: Connection, ticket: Ticket, snapshot_sent: bool) -> None:
        try:
            # Bound before `connected` goes out: from the client's first frame on, every push
            # to the user reaches this connection live (a signal right after connect included).
            await self.router.sync_binding(connection.user_id)
            connection.start_writing()
            await self.router.announce_opened(connection, snapshot_sent)
        except Unavailable:
            connection.close_after_queued(CLOSE_TRY_AGAIN)
            connection.start_writing()
            return
        finally:
            ticket.done()
        log.debug("connected")
        await self._read_loop(connection)

    async def _forget(self, connection: Connection) -> None:
        try:
            if not self.stopping:  # stopping: the exclusive queue goes, its bindings with it
                await self.router.sync_binding(connection.user_id)
            await self.router.announce_closed(connection)
        except Unavailable:
            log.warning("broker unavailable while closing; presence will reconcile")

    async def _read_loop(self, connection: Connection) -> None:
        """Read frames and hand their commands on without waiting for the broker's confirm,
        up to :data:`MAX_UNCONFIRMED` per connection: a client sending many at once (an
        offline outbox flushing) gets them into shared messages instead of one per confirm.
        Its commands still go out in the order read."""
        websocket = connection.websocket
        unconfirmed: deque[asyncio.Future[None]] | None = None
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            published = await self.handle_frame(
                connection, text if text is not None else message.get("bytes", b"")
            )
            if published is None or published.done():
                continue
            if unconfirmed is None:
                unconfirmed = deque()
            unconfirmed.append(published)
            while unconfirmed[0].done():
                unconfirmed.popleft()
            if len(unconfirmed) >= MAX_UNCONFIRMED:  # wait for the oldest (never cancel it)
                await asyncio.wait([unconfirmed.popleft()])

    async def handle_frame(
        self, connection: Connection, raw: str | bytes
    ) -> asyncio.Future[None] | None:
        """Answer or forward one client frame; for a command, the future of its publish
        (its refusal, if any, is told to the connection as an ``error`` frame)."""
        if not connection.may_send():
            ref, event = salvage_ref_and_event_quietly(raw, self.settings.max_frame_bytes)
            self._error(connection, FrameError(RateLimited("rate limit exceeded"), ref, event))
            return None
        try:
            parsed = parse_frame(raw, connection.identity.role, self.settings.max_frame_bytes)
        except FrameError as exc:
            self._error(connection, exc)
            return None
        event = parsed.spec.name
        metrics.labelled(metrics.FRAMES_IN, event).inc()
        if parsed.spec.service == GATEWAY:  # ping
            self._send(
                connection,
                {"event": "pong", "ref": parsed.ref, "data": {"server_time": iso(time.time())}},
            )
            return None
        try:
            return self.router.submit_command(
                connection, parsed.spec, parsed.payload.model_dump(mode="json"), parsed.ref
            )
        except Unavailable as exc:
            self._error(connection, FrameError(exc, parsed.ref, event))
            return None

    def _error(self, connection: Connection, error: FrameError) -> None:
        metrics.labelled(metrics.ERRORS, str(error.code)).inc()
        frame = error_frame(error.ref, error.code, error.message, error.event, error.retry_after_ms)
        self._send(connection, frame)

    def _send(self, connection: Connection, frame: dict[str, object]) -> None:
        try:
            connection.send(dumps(frame))
        except SlowConsumer:
            self.drop_slow(connection)

    def drop_slow(self, connection: Connection) -> None:
        metrics.SLOW_CLOSES.inc()
        log.warning("closing connection %s: client does not read its frames", connection.id)
        connection.abort(CLOSE_POLICY)

    async def close_all(self, timeout_s: float = 5.0) -> None:
        """Shutdown: refuse new sockets, close every socket with 1001 and wait for their
        handlers to clean up."""
        self.stopping = True
        for connection in self.registry:
            connection.close_after_queued(CLOSE_GOING_AWAY)
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=timeout_s)


def salvage_ref_and_event_quietly(
    raw: str | bytes, max_bytes: int
) -> tuple[str | None, str | None]:
    if isinstance(raw, bytes) or len(raw) > max_bytes:
        return None, None
    try:
        return salvage_ref_and_event(loads(raw))
    except ValueError:
        return None, None
