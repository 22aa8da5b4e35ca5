"""``python -m services.gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import socket

import uvicorn

from services.gateway.app import create_app, sockets_first
from services.gateway.frames import hard_frame_limit
from services.gateway.sessions import Sessions
from services.gateway.wire import GatewayHttpProtocol, GatewayWebSocketProtocol
from shared.gc_policy import tune_for_long_lived_heap
from shared.logs import configure_logging
from shared.settings import MIN_JWT_SECRET_BYTES, get_settings

# Handshakes waiting to be accepted: a reconnect storm overflowed uvicorn's 2048 (the kernel
# caps it at net.core.somaxconn).
LISTEN_BACKLOG = 8192


class GatewayServer(uvicorn.Server):
    """Closes every client connection (/ws: 1001) (and lets presence know) before uvicorn stops."""

    def __init__(self, config: uvicorn.Config, sessions: Sessions) -> None:
        super().__init__(config)
        self.sessions = sessions

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.sessions.close_all()
        await super().shutdown(sockets)


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket | None:
    """With ``reuse_port``, a socket bound with SO_REUSEPORT, so that other gateway processes
    can bind the same port; otherwise None (uvicorn binds its own)."""
    if not reuse_port:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main() -> None:
    settings = get_settings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    problem = settings.jwt_secret_problem()
    if problem is not None:
        raise SystemExit(
            f"refusing to start: {problem}. Set IM_JWT_SECRET to {MIN_JWT_SECRET_BYTES}+ random "
            "bytes (e.g. `openssl rand -hex 32`), or IM_DEV_MODE=true on a development machine."
        )
    app = create_app(settings)
    config = uvicorn.Config(
        sockets_first(app),
        host=settings.gateway_host,
        port=settings.gateway_port,
        loop="uvloop",
        http=GatewayHttpProtocol,  # uvicorn's httptools, letting go of upgraded sockets
        ws=GatewayWebSocketProtocol,  # uvicorn's websockets-sansio, plus prebuilt frames
        ws_per_message_deflate=settings.ws_compression,
        ws_max_size=hard_frame_limit(settings.max_frame_bytes),
        ws_ping_interval=settings.heartbeat_interval_s,
        ws_ping_timeout=settings.heartbeat_interval_s * 2,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        backlog=LISTEN_BACKLOG,
    )
    shared_port = listening_socket(
        settings.gateway_host, settings.gateway_port, settings.gateway_reuse_port
    )
    tune_for_long_lived_heap()  # thousands of connections: no full collection per storm
    GatewayServer(config, app.state.sessions).run(
        sockets=None if shared_port is None else [shared_port]
    )


if __name__ == "__main__":
    main()
