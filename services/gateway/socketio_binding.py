"""The ``/socket.io/`` endpoint (PROTOCOL §8): Engine.IO v4 / Socket.IO v5, websocket and
long-polling, served by python-socketio in the gateway's own process.

Only the transport is python-socketio's. Each Socket.IO client is a :class:`Connection` in
the gateway's :class:`Registry`, like a ``/ws`` socket: the router's pushes and replies reach
it the same way, and admission, the per-user cap, the rate limits and every error code are
:mod:`sessions`' (python-socketio's client manager fans nothing out). What differs is only
the framing (:mod:`socketio_mapping`): a frame queued for the client is emitted as a
Socket.IO event, and a reply becomes the acknowledgement of the event it answers.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import socketio
from starlette.types import Receive, Scope, Send

from services.gateway.connections import (
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    Connection,
)
from services.gateway.engineio_server import EngineIOServer, SocketIOServer
from services.gateway.frames import hard_frame_limit
from services.gateway.sessions import Refusal, Session, Sessions, Unconfirmed
from services.gateway.socketio_mapping import (
    REPLIES,
    acknowledgement,
    parse_event,
    refusal_data,
    token_of,
)
from shared.errors import ErrorCode
from shared.logs import connection_id_var, user_id_var
from shared.protocol.envelope import loads

NAMESPACE = "/"
PATH = "socket.io"
# Closes after which the client must not come back as it is (a fresh token, fewer sockets):
# a Socket.IO disconnect, which socket.io-client does not retry. Any other close (going away,
# try again, slow consumer) ends the transport only, and the client reconnects with backoff.
FINAL_CLOSES = frozenset({CLOSE_UNAUTHORIZED, CLOSE_TOO_MANY})
GONE = {"ok": False, "error": {"code": str(ErrorCode.UNAVAILABLE), "message": "disconnected"}}


class SocketIOClient:
    """One Socket.IO client, as the :class:`Connection` writing to it sees a socket."""

    __slots__ = (
        "scope",
        "server",
        "sid",
        "queue_limit",
        "on_slow",
        "reading",
        "unconfirmed",
        "gone",
        "in_order",
        "_transport",
        "_replies",
        "_refs",
    )

    def __init__(self, server: socketio.AsyncServer, sid: str, queue_limit: int) -> None:
        self.scope: MutableMapping[str, Any] = {}  # no prebuilt frames: every frame is emitted
        self.server = server
        self.sid = sid
        self.queue_limit = queue_limit
        # called when the client has queue_limit packets unread (drops the connection)
        self.on_slow: Callable[[], None] = _nothing
        eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
        self._transport: Any = server.eio.sockets.get(eio_sid)  # python-engineio's socket
        loop = asyncio.get_running_loop()
        # As /ws reads no frame before the session is set up (user bound, connection
        # announced), the client's events wait for `reading`; they are handed on one after
        # the other, in order, within the same window of unconfirmed commands as /ws's
        # (python-socketio runs each in a task of its own).
        self.reading: asyncio.Future[None] = loop.create_future()
        self.in_order = asyncio.Lock()
        self.unconfirmed = Unconfirmed()
        self.gone: asyncio.Future[None] = loop.create_future()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)

    def expect_reply(self) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        """A ``ref`` for the next event, and the acknowledgement its reply will be."""
        ref = f"sio{next(self._refs)}"
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = reply
        return ref, reply

    def forget_reply(self, ref: str) -> None:
        self._replies.pop(ref, None)

    async def send_text(self, data: str) -> None:
        frame = loads(data)
        event = frame.get("event")
        if event in REPLIES:
            reply = self._replies.pop(str(frame.get("ref")), None)
            if reply is not None and not reply.done():
                reply.set_result(acknowledgement(frame))
            return
        # Engine.IO queues without bound what the client has not taken yet: the cut /ws makes
        # at send_queue_limit frames unread is made here on that queue.
        if self._transport is not None and self._transport.queue.qsize() >= self.queue_limit:
            self.on_slow()
            return
        await self.server.emit(event, frame.get("data"), to=self.sid, namespace=NAMESPACE)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if code in FINAL_CLOSES:
            await self.server.disconnect(self.sid, namespace=NAMESPACE)
            return
        transport = self._transport
        if transport is None:
            return
        await self.server.eio.disconnect(transport.sid)  # Engine.IO's CLOSE packet
        # engine.io-client acts on a CLOSE packet only over long-polling, and python-engineio
        # leaves a WebSocket open until its ping timeout (2 heartbeats): ending its writer (what
        # python-engineio itself does when the client goes) closes the WebSocket now.
        transport.queue.put_nowait(None)

    async def read(self) -> None:
        """The session is set up: handle the client's events until it is gone."""
        if not self.reading.done():
            self.reading.set_result(None)
        await asyncio.shield(self.gone)

    def end(self) -> None:
        """The client is gone: its session ends, and requests still waiting get no reply."""
        for future in (self.reading, self.gone):
            if not future.done():
                future.set_result(None)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_result(GONE)
        self._replies.clear()
        # on_slow holds the connection, which holds this client: a cycle. python-engineio's
        # socket, and the ping it has pending, must not keep either (engineio_server).
        self.on_slow = _nothing
        if self._transport is not None:
            cast(EngineIOServer, self.server.eio).end_heartbeat(self._transport.sid)
        self._transport = None


class SocketIOBinding:
    """python-socketio's ASGI server, its events handed to :class:`Sessions`."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        settings = sessions.settings
        self.server = SocketIOServer(
            async_mode="asgi",
            # As /ws: no origin check (clients authenticate with a token, never a cookie).
            cors_allowed_origins="*",
            # Engine.IO's heartbeat in place of the WebSocket pings of /ws: a client that
            # misses a ping for another interval is dropped.
            ping_interval=settings.heartbeat_interval_s,
            ping_timeout=settings.heartbeat_interval_s,
            max_http_buffer_size=hard_frame_limit(settings.max_frame_bytes),
            transports=["polling", "websocket"],
        )
        self._asgi = socketio.ASGIApp(self.server, socketio_path=PATH)
        self._clients: dict[str, tuple[SocketIOClient, Connection]] = {}
        self._sessions: set[asyncio.Task[None]] = set()
        self.server.on("connect", self._connect, namespace=NAMESPACE)
        self.server.on("disconnect", self._disconnect, namespace=NAMESPACE)
        self.server.on("*", self._event, namespace=NAMESPACE)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app of ``/socket.io/``. A stopping gateway refuses new Engine.IO sessions
        with HTTP 503 (a WebSocket: closed before it is accepted), below Socket.IO: clients
        reconnecting from the sockets it just closed retry with their backoff and find
        another gateway, or this one restarted, where a ``connect_error`` (1012) would stop
        them for good."""
        if self.sessions.stopping and scope["type"] != "lifespan" and not _resumes(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})
            else:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"gateway restarting"})
            return
        # Should python-engineio keep a request in a reference cycle, which only a full
        # collection frees (rarely, in the gateway: shared/gc_policy.py; the cycles known
        # are removed in engineio_server), the cycle holds these relays, cut when the
        # request is over, and not the connection (uvicorn's protocol, its buffers, queues
        # and parser), which is freed at once.
        receiving, sending = Relay(receive), Relay(send)
        try:
            await self._asgi(scope, cast(Receive, receiving), cast(Send, sending))
        finally:
            receiving.cut()
            sending.cut()

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            ticket = self.sessions.enter()
        except Refusal as refusal:
            raise refused(refusal) from None
        client = SocketIOClient(self.server, sid, self.sessions.settings.send_queue_limit)
        try:
            token = token_of(
                auth, environ.get("QUERY_STRING", ""), environ.get("HTTP_AUTHORIZATION")
            )
            identity = self.sessions.authenticate(token)
            session = self.sessions.open(client, identity, ticket)
        except Refusal as refusal:
            ticket.done()
            raise refused(refusal) from None
        client.on_slow = functools.partial(self.sessions.drop_slow, session.connection)
        self._clients[sid] = (client, session.connection)
        # The session is set up once python-socketio has answered the connect (CONNECT goes
        # out first, then `connected`), and lasts until the client is gone.
        task = asyncio.create_task(self._run(session, client), name=f"socketio-{sid}")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _run(self, session: Session, client: SocketIOClient) -> None:
        try:
            await self.sessions.run(session, lambda _: client.read())
        finally:
            client.end()
            self._clients.pop(client.sid, None)

    async def _disconnect(self, sid: str, reason: str | None = None) -> None:
        entry = self._clients.pop(sid, None)
        if entry is not None:
            entry[0].end()

    async def _event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        entry = self._clients.get(sid)
        if entry is None:  # between the transport's end and our disconnect handler
            return GONE
        client, connection = entry
        user_id_var.set(connection.user_id)  # python-socketio runs each event in a task of
        connection_id_var.set(connection.id)  # its own: the log context of this connection
        ref, reply = client.expect_reply()
        max_bytes = self.sessions.settings.max_frame_bytes
        role = connection.identity.role
        try:
            async with client.in_order:
                await client.reading
                if client.gone.done():
                    return GONE
                published = self.sessions.handle(
                    connection,
                    lambda: parse_event(event, args, ref, role, max_bytes),
                    lambda: (ref, event[:64]),
                )
                await client.unconfirmed.add(published)
            return await reply
        finally:
            client.forget_reply(ref)


def _nothing() -> None:
    pass


class Relay:
    """An ASGI ``receive`` or ``send`` that calls the real one until :meth:`cut`, then fails
    as a connection that is gone."""

    __slots__ = ("_target",)

    def __init__(self, target: Callable[..., Awaitable[Any]]) -> None:
        self._target: Callable[..., Awaitable[Any]] | None = target

    async def __call__(self, *message: Any) -> Any:
        if self._target is None:
            raise OSError("the request is over")
        return await self._target(*message)

    def cut(self) -> None:
        self._target = None


def refused(refusal: Refusal) -> socketio.exceptions.ConnectionRefusedError:
    """A ``connect_error`` whose ``message`` says why and whose ``data`` is
    ``{"code", "message"}`` (PROTOCOL §8)."""
    data = refusal_data(refusal.code, refusal.message, refusal.retry_after_ms)
    return socketio.exceptions.ConnectionRefusedError(refusal.message, data)


def _resumes(scope: Scope) -> bool:
    """Whether the request belongs to an Engine.IO session already open (``sid=``)."""
    return any(part.startswith(b"sid=") for part in scope.get("query_string", b"").split(b"&"))
