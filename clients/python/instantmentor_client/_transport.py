"""The few ``websockets`` calls the client makes, for every version from 12 to 17.

websockets ≥ 13 has the ``websockets.asyncio`` client; 12 only the legacy one. Both objects
offer ``send``, ``recv``, ``close``, async iteration and ``transport``; only the name of the
header argument and of the HTTP-refusal exception differ.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake

try:
    _connect: Any = importlib.import_module("websockets.asyncio.client").connect
    _HEADERS_ARG = "additional_headers"
except ImportError:  # websockets 12
    _connect = importlib.import_module("websockets.legacy.client").connect
    _HEADERS_ARG = "extra_headers"

Socket = Any  # websockets' ClientConnection (≥ 13) or WebSocketClientProtocol (12)

__all__ = [
    "ConnectionClosed",
    "InvalidHandshake",
    "Socket",
    "abort",
    "close_info",
    "http_status",
    "open_socket",
]


async def open_socket(url: str, token: str, *, open_timeout: float, max_size: int | None) -> Socket:
    """Open the WebSocket with ``Authorization: Bearer <token>``; our own heartbeat replaces
    the library's keepalive pings (it still answers the server's)."""
    kwargs: dict[str, Any] = {
        _HEADERS_ARG: {"Authorization": f"Bearer {token}"},
        "open_timeout": open_timeout,
        "max_size": max_size,
        "ping_interval": None,
        "close_timeout": 2,
    }
    return await _connect(url, **kwargs)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a refused handshake, if ``exc`` is one."""
    status = getattr(exc, "status_code", None)  # legacy InvalidStatusCode
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)  # InvalidStatus
    return int(status) if isinstance(status, int) else None


def close_info(
    exc: ConnectionClosed | None, socket: Socket | None = None
) -> tuple[int | None, str]:
    """The close code and reason the server sent (``None`` when the connection just broke)."""
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return int(rcvd.code), str(rcvd.reason)
    if socket is not None:
        code = getattr(socket, "close_code", None)
        return (int(code) if isinstance(code, int) else None), str(
            getattr(socket, "close_reason", "") or ""
        )
    return None, ""


CLOSE_TRY_AGAIN = 1013
_RETRY_AFTER = re.compile(r"retry_after_ms=(\d{1,7})")


def retry_after_s(code: int | None, reason: str) -> float | None:
    """The server's "come back in" hint of a close 1013 (``retry_after_ms=<n>`` in its
    reason), in seconds; None when there is none."""
    if code != CLOSE_TRY_AGAIN:
        return None
    found = _RETRY_AFTER.search(reason)
    return int(found.group(1)) / 1000 if found else None


def abort(socket: Socket) -> None:
    """Drop the TCP connection at once (a dead peer would never finish a close handshake)."""
    transport = getattr(socket, "transport", None)
    if transport is not None:
        transport.abort()
