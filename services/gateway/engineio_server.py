"""python-engineio's server, made to leave nothing behind when a client goes.

python-engineio keeps what a client leaves in two kinds of place. Some hold a closed socket
alive for up to a heartbeat (its next ping's task, the client monitor's copy of the sockets).
Others are reference cycles, which only a full collection frees, and those are rare in the
gateway (shared/gc_policy.py): a socket's WebSocket handler ends in a cycle through the
exception that told it its client had gone, and its ASGI driver defines a class for every
request. Under churn that was thousands of sockets at once (the churn soak, bench/soak: the
gateway at 150-190 MiB over Socket.IO against 84 over /ws). What is here removes all of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import engineio
import socketio
from engineio.async_drivers import asgi as engineio_asgi
from engineio.async_socket import AsyncSocket
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)


class EngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, keeping no socket after its client has gone.

    A closed socket (its queues, its session, its tasks' contexts: about 14 KiB) was held for
    up to a heartbeat by the task of its next ping, which first sleeps a whole ping interval,
    and by the client monitor, which sweeps a copy of every socket over a ping timeout. Here
    the task of each socket's next ping is kept, and :meth:`end_heartbeat` cancels it when the
    client is gone; and the client monitor is this class's own, which sweeps the sockets by
    id. Its WebSockets are :class:`UncycledWebSocket`, and its requests are read by
    :func:`translate_request`."""

    _async: dict[str, Any]  # python-engineio's driver table (its ASGI driver's classes)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, monitor_clients=False, **kwargs)
        # where python-engineio finds its ASGI driver's request reader and WebSocket class
        self._async = {
            **self._async,
            "translate_request": translate_request,
            "websocket": UncycledWebSocket,
        }
        self._heartbeats: dict[str, asyncio.Future[Any]] = {}
        self._monitor: asyncio.Task[None] | None = None

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        task: asyncio.Future[Any] = super().start_background_task(target, *args, **kwargs)
        socket = getattr(target, "__self__", None)
        if isinstance(socket, AsyncSocket):  # a socket's only background task: its next ping
            self._heartbeats[socket.sid] = task
            task.add_done_callback(functools.partial(self._heartbeat_done, socket.sid))
        return task

    def _heartbeat_done(self, sid: str, task: asyncio.Future[Any]) -> None:
        if self._heartbeats.get(sid) is task:
            del self._heartbeats[sid]

    def end_heartbeat(self, sid: str) -> None:
        """The socket ``sid`` (Engine.IO's) is over: no further ping."""
        task = self._heartbeats.pop(sid, None)
        if task is not None:
            task.cancel()

    def heartbeats(self) -> int:
        """Sockets with a ping to come (for tests)."""
        return len(self._heartbeats)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._monitor_clients(), name="engineio-monitor")
        return await super().handle_request(*args, **kwargs)

    async def shutdown(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
            self._monitor = None
        await super().shutdown()

    async def _monitor_clients(self) -> None:
        """What python-engineio's client monitor does: close each socket whose client stopped
        answering pings (a long-polling one: a WebSocket's own handler notices silence) and
        forget closed ones, each socket once per ping timeout; but over a list of socket ids,
        so that no socket is held between its checks."""
        while True:
            sids = list(self.sockets)
            pause = self.ping_timeout / max(len(sids), 1)
            for sid in sids:
                try:
                    await self._check(sid)
                except Exception:
                    log.exception("Engine.IO client monitor: checking a socket failed")
                await asyncio.sleep(pause)
            if not sids:
                await asyncio.sleep(self.ping_timeout)

    async def _check(self, sid: str) -> None:
        socket = self.sockets.get(sid)
        if socket is None:
            return
        if socket.closed:
            self.sockets.pop(sid, None)
        elif not socket.closing:
            await socket.check_ping_timeout()


class SocketIOServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server over :class:`EngineIOServer`."""

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return EngineIOServer


class UncycledWebSocket(engineio_asgi.WebSocket):  # type: ignore[misc]
    """python-engineio's ASGI WebSocket, whose handler leaves no reference cycle behind.

    When the client goes, or sends a packet over ``max_http_buffer_size``, :meth:`wait`
    raises ``OSError``; the socket's handler gets it from the task it awaited and returns.
    The exception's traceback then holds the handler's frame, whose locals hold that task,
    which holds the exception: a cycle keeping the socket, its queues and its tasks until a
    full collection. Once the handler is over, the exception forgets its traceback, and all
    of it is freed at once."""

    def __init__(self, handler: Callable[..., Any], server: Any) -> None:
        super().__init__(handler, server)
        self._max_bytes: int = server.max_http_buffer_size
        self._gone: OSError | None = None

    async def __call__(self, environ: dict[str, Any]) -> Any:
        try:
            return await super().__call__(environ)
        finally:
            if self._gone is not None:
                self._gone.__traceback__ = None
                self._gone = None

    async def wait(self) -> Any:
        try:
            data = await super().wait()
        except OSError as gone:
            self._gone = gone
            raise
        if data and len(data) > self._max_bytes:
            # python-engineio's handler would raise ValueError for it, making the same cycle
            # through an exception not seen here; it ends the socket as a closed one instead
            self._gone = OSError("packet is too large")
            raise self._gone
        return data


async def translate_request(scope: Scope, receive: Receive, send: Send) -> dict[str, Any]:
    """The environ python-engineio's ASGI driver makes of a request, the same in every key,
    but whose body is a :class:`RequestBody`: python-engineio's driver defines a class for
    each request (12 µs, and 2.8 KiB left in cycles until a full collection; every poll of a
    long-polling client is a request). ``tests/unit/test_engineio_server.py`` compares the
    two."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode()
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        **_FIXED_ENVIRON,
        "wsgi.input": RequestBody(event, receive),
        "wsgi.errors": sys.stderr,
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name, value = raw_name.upper().decode(), raw_value.decode()
        except UnicodeDecodeError:
            continue
        if name in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            environ[name.replace("-", "_")] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


_FIXED_ENVIRON: dict[str, Any] = {
    "wsgi.version": (1, 0),
    "wsgi.async": True,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "SERVER_SOFTWARE": "asgi",
    "SCRIPT_NAME": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "0",
    "SERVER_NAME": "asgi",
    "SERVER_PORT": "0",
}


class RequestBody:
    """A request's body, read as python-engineio reads its ``wsgi.input``: whole the first
    time (up to ``length`` of it kept), then ``length`` bytes a call."""

    __slots__ = ("_event", "_payload", "_receive")

    def __init__(self, event: MutableMapping[str, Any], receive: Receive) -> None:
        self._event = event
        self._receive = receive
        self._payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes | None:
        if self._payload is None and self._event["type"] == "http.request":
            payload = self._event.get("body") or b""
            while self._event.get("more_body"):
                self._event = await self._receive()
                if self._event["type"] == "http.request" and (
                    length is None or len(payload) < length
                ):
                    payload += self._event.get("body") or b""
            self._payload = payload
        if length is None:
            read, self._payload = self._payload, b""
            return read
        payload = self._payload or b""
        read, self._payload = payload[:length], payload[length:]
        return read
