"""What every client connection goes through, whichever binding it came by (``/ws`` or
``/socket.io/``): admission, the token, the per-user cap, the session (greeting, binding,
announcement, cleanup) and the handling of each client event. The bindings only translate
between their transport and these steps (PROTOCOL §1–2, §8)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
    FrameSocket,
    SlowConsumer,
)
from services.gateway.frames import FrameError, ParsedFrame
from services.gateway.ratelimit import TokenBucket
from services.gateway.registry import Registry
from services.gateway.router import Router
from shared.auth import Identity, verify_token
from shared.clock import iso
from shared.errors import AuthError, RateLimited, Unavailable
from shared.logs import connection_id_var, user_id_var
from shared.protocol.envelope import TOO_MANY_CONNECTIONS, dumps, error_frame
from shared.protocol.registry import GATEWAY
from shared.protocol.session import Connected
from shared.settings import Settings

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CLOSE_TIMEOUT_S = 5.0  # for the frames still queued when a connection ends
MAX_UNCONFIRMED = 16  # commands of one connection handed on before the broker confirmed them


class Refusal(Exception):
    """A connection refused before its session starts: the close code of PROTOCOL §1 (a
    WebSocket closes with it, Socket.IO answers ``connect_error``) and why."""

    def __init__(self, code: int, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True, slots=True)
class Session:
    """A connection admitted and registered, its set-up still to run (:meth:`Sessions.run`)."""

    connection: Connection
    ticket: Ticket
    snapshot_sent: bool


# How a binding waits for its client's frames: returns when the client is gone.
Reader = Callable[[Connection], Awaitable[None]]


class Sessions:
    """Every client connection of one gateway process, over both bindings."""

    def __init__(self, settings: Settings, registry: Registry, router: Router) -> None:
        self.settings = settings
        self.gate = ConnectGate(settings.max_pending_connects)
        self.stopping = False
        self.registry = registry
        self.router = router
        self._handlers: set[asyncio.Task[None]] = set()

    # -- admission (no awaits: a binding answers a refusal in its own way) -----------------

    def enter(self) -> Ticket:
        """A ticket to set a new connection up, or :class:`Refusal` (stopping, a storm)."""
        if self.stopping:  # a client reconnecting at once must go to another gateway
            raise Refusal(CLOSE_SERVICE_RESTART, "gateway restarting")
        ticket = self.gate.enter()
        if ticket is None:  # a storm: come back later, at the slot given
            retry_ms = self.gate.retry_after_ms()
            metrics.CONNECTS_REFUSED.inc()
            raise Refusal(
                CLOSE_TRY_AGAIN, f"server busy; retry_after_ms={retry_ms}", retry_after_ms=retry_ms
            )
        return ticket

    def authenticate(self, token: str | None) -> Identity:
        try:
            return verify_token(token, self.settings.jwt_secret)
        except AuthError as exc:
            raise Refusal(CLOSE_UNAUTHORIZED, str(exc)[:120]) from None

    def open(self, socket: FrameSocket, identity: Identity, ticket: Ticket) -> Session:
        """Register a connection of ``identity`` on ``socket``, ``connected`` (and a student's
        mentor snapshot) queued first; or :class:`Refusal` (no broker, the per-user cap).
        Nothing here awaits: two handshakes of one user cannot both slip under the cap."""
        if not self.router.broker.connected:
            raise Refusal(CLOSE_TRY_AGAIN, "broker unavailable, retry later")
        s = self.settings
        if self.registry.count_of(identity.user_id) >= s.max_connections_per_user:
            raise Refusal(CLOSE_TOO_MANY, TOO_MANY_CONNECTIONS)
        connection = Connection(
            socket,
            identity,
            TokenBucket(s.rate_limit_per_s, s.rate_limit_burst),
            queue_limit=s.send_queue_limit,
            user_limiter=self.registry.user_limiter(identity.user_id),
        )
        # `connected` is the first frame queued, but nothing is written until the user is
        # bound (see _set_up): pushes that arrive meanwhile wait behind it, in order.
        connection.send(self._connected_frame(connection))
        # The cached snapshot, and registered in the same step: every status broadcast this
        # gateway handles later reaches the connection as an update (no await in between).
        snapshot = self.router.snapshot_frame(identity)
        if snapshot is not None:
            connection.send(snapshot)
        self.registry.add(connection)
        return Session(connection, ticket, snapshot_sent=snapshot is not None)

    def _connected_frame(self, connection: Connection) -> str:
        identity = connection.identity
        connected = Connected(
            user_id=identity.user_id,
            role=identity.role.value,
            name=identity.name,
            connection_id=connection.id,
            server_time=iso(time.time()),
            heartbeat_interval_s=self.settings.heartbeat_interval_s,
            protocol_version=PROTOCOL_VERSION,
        )
        return dumps(connected.frame)

    # -- the session -----------------------------------------------------------------------

    async def run(self, session: Session, read: Reader) -> None:
        """Set the connection up, ``read`` until the client is gone, then clean up."""
        connection = session.connection
        user_id_var.set(connection.user_id)
        connection_id_var.set(connection.id)
        # This task reads. When the writing side ends the connection first (slow consumer,
        # a close sent, a dead socket), the read is interrupted: a cancel of our own, told
        # apart from one from outside (shutdown) by Task.cancelling().
        task = reading = asyncio.current_task()
        assert task is not None and reading is not None
        self._handlers.add(task)  # until the cleanup below is done: shutdown waits for it
        expiry = self._close_at_expiry(connection)

        def stop_reading(_: object) -> None:
            if reading is not None and not reading.done():
                reading.cancel()

        connection.ended.add_done_callback(stop_reading)
        try:
            if await self._set_up(session):
                log.debug("connected")
                await read(connection)
        except asyncio.CancelledError:
            if not connection.ended.done() or reading.cancelling() > 1:
                raise
            reading.uncancel()
        except Exception:
            log.exception("connection handler failed")
        finally:
            session.ticket.done()
            connection.ended.remove_done_callback(stop_reading)
            reading = None
            if expiry is not None:
                expiry.cancel()
            self.registry.remove(connection)
            connection.finish()
            try:
                await connection.wait_ended(CLOSE_TIMEOUT_S)
                await self._forget(connection)
            finally:
                self._handlers.discard(task)
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

    async def _set_up(self, session: Session) -> bool:
        """Bind the user, let ``connected`` out, tell the services; False when the broker
        failed meanwhile (the client is told to come back: 1013)."""
        connection = session.connection
        try:
            # Bound before `connected` goes out: from the client's first frame on, every push
            # to the user reaches this connection live (a signal right after connect included).
            await self.router.sync_binding(connection.user_id)
            connection.start_writing()
            await self.router.announce_opened(connection, session.snapshot_sent)
        except Unavailable:
            connection.close_after_queued(CLOSE_TRY_AGAIN)
            connection.start_writing()
            return False
        finally:
            session.ticket.done()
        return True

    async def _forget(self, connection: Connection) -> None:
        try:
            if not self.stopping:  # stopping: the exclusive queue goes, its bindings with it
                await self.router.sync_binding(connection.user_id)
            await self.router.announce_closed(connection)
        except Unavailable:
            log.warning("broker unavailable while closing; presence will reconcile")

    # -- client events ---------------------------------------------------------------------

    def handle(
        self,
        connection: Connection,
        parse: Callable[[], ParsedFrame],
        salvage: Callable[[], tuple[str | None, str | None]],
    ) -> asyncio.Future[None] | None:
        """One client event: the rate limits, ``parse`` (raising :class:`FrameError`), then
        the answer (``ping``) or the command handed on without waiting for the broker; for a
        command, the future of its publish (its refusal, if any, is told to the connection as
        an ``error`` frame; its reply comes back through the router). ``salvage`` gives the
        ``ref`` and ``event`` to echo when the event is refused before it is parsed."""
        if not connection.may_send():
            self.refuse(connection, FrameError(RateLimited("rate limit exceeded"), *salvage()))
            return None
        try:
            parsed = parse()
        except FrameError as exc:
            self.refuse(connection, exc)
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
            return self.router.requests.submit(
                connection, parsed.spec, parsed.payload.model_dump(mode="json"), parsed.ref
            )
        except Unavailable as exc:
            self.refuse(connection, FrameError(exc, parsed.ref, event))
            return None

    def refuse(self, connection: Connection, error: FrameError) -> None:
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
        """Shutdown: refuse new connections, close every one with 1001 and wait for their
        handlers to clean up."""
        self.stopping = True
        for connection in self.registry:
            connection.close_after_queued(CLOSE_GOING_AWAY)
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=timeout_s)


class Unconfirmed:
    """The commands of one connection handed on before the broker confirmed them, at most
    :data:`MAX_UNCONFIRMED`: a client sending many at once (an offline outbox flushing) gets
    them into shared messages instead of one per confirm, and its reader waits beyond that.
    Its commands still go out in the order read."""

    __slots__ = ("_published",)

    def __init__(self) -> None:
        self._published: deque[asyncio.Future[None]] | None = None  # made on first use

    async def add(self, published: asyncio.Future[None] | None) -> None:
        """Count ``published`` (what :meth:`Sessions.handle` returned); wait for the oldest
        when the window is full (never cancelling it)."""
        if published is None or published.done():
            return
        if self._published is None:
            self._published = deque()
        unconfirmed = self._published
        unconfirmed.append(published)
        while unconfirmed[0].done():
            unconfirmed.popleft()
        if len(unconfirmed) >= MAX_UNCONFIRMED:
            await asyncio.wait([unconfirmed.popleft()])
