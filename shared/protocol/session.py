"""PROTOCOL §2 — the connection itself: ``connected``, ``ping`` / ``pong`` and ``error``,
all answered by the gateway."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.protocol.base import ClientEvent, ServerPush

GATEWAY = "gateway"


class Ping(ClientEvent):
    """Answered with ``pong``: a client's check that the connection is alive."""

    EVENT = "ping"
    SERVICE: ClassVar[str] = GATEWAY


class Connected(ServerPush):
    """The first frame on every connection."""

    EVENT = "connected"

    user_id: str
    role: Literal["student", "mentor"]
    name: str
    connection_id: str
    server_time: str
    heartbeat_interval_s: float
    protocol_version: Literal[1]


class Pong(ServerPush):
    """The answer to ``ping``."""

    EVENT = "pong"

    server_time: str


class ErrorData(ServerPush):
    """``error``: a refused event (with its ``ref``), or a frame that could not be read."""

    EVENT = "error"

    code: str
    message: str
    event: str | None
    retry_after_ms: int | None = None  # with rate_limited / unavailable: when to try again
