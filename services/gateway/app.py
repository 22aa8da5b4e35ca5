"""The gateway application: wires the broker, the router, the sockets and the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from services.gateway.dev import dev_routes
from services.gateway.http import routes
from services.gateway.registry import Registry
from services.gateway.router import Router
from services.gateway.sessions import Sessions
from services.gateway.socketio_binding import PATH as SOCKETIO_PATH
from services.gateway.socketio_binding import SocketIOBinding
from services.gateway.ws import SocketHandler
from shared.amqp.broker import Broker
from shared.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    broker = Broker(settings, f"gateway-{os.getpid()}")
    registry = Registry(settings.user_rate_limit_per_s, settings.user_rate_limit_burst)
    sessions: Sessions

    router = Router(broker, registry, on_slow_consumer=lambda c: sessions.drop_slow(c))
    sessions = Sessions(settings, registry, router)
    sockets = SocketHandler(sessions)
    socketio = SocketIOBinding(sessions)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect(retry_for_s=120)
        await router.start()
        background = [
            asyncio.create_task(router.heartbeat_loop(), name="gateway-heartbeat"),
            asyncio.create_task(router.requests.expire_loop(), name="request-expiry"),
            asyncio.create_task(router.snapshot_loop(), name="mentor-snapshot"),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await socketio.server.shutdown()  # Engine.IO's client monitor
            await broker.close()

    app = FastAPI(title="InstantMentor Realtime gateway", lifespan=lifespan)
    app.state.settings = settings
    app.state.router = router
    app.state.sessions = sessions
    app.state.sockets = sockets
    app.state.socketio = socketio
    app.include_router(routes)
    app.include_router(dev_routes)

    # Also reachable through FastAPI's stack (tests, other servers); the process itself
    # serves /ws through `sockets_first` below.
    app.router.routes.insert(0, WebSocketRoute("/ws", sockets.serve))
    app.mount(f"/{SOCKETIO_PATH}", socketio.app)

    return app


def sockets_first(app: FastAPI) -> ASGIApp:
    """The ASGI app the gateway serves: ``/ws`` straight to the socket handler, ``/socket.io/``
    straight to python-socketio, everything else to FastAPI. A socket lives for hours: each
    middleware layer (error pages, body limits, exit stacks, routing) would keep a coroutine
    frame per connection alive all that time, and costs a few percent of every connect in a
    storm; none of them applies to it."""
    sockets: SocketHandler = app.state.sockets
    socketio: ASGIApp = app.state.socketio.app
    socketio_prefix = f"/{SOCKETIO_PATH}/"

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await sockets.serve(WebSocket(scope, receive, send))
        elif scope["type"] != "lifespan" and scope["path"].startswith(socketio_prefix):
            await socketio(scope, receive, send)
        else:
            await app(scope, receive, send)

    return serve
