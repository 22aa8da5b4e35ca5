"""One connection attempt: get the token, open the WebSocket, read the ``connected`` frame.

A refused token (HTTP 401/403 on the handshake, or close code 4401) raises
:class:`~instantmentor_client.errors.AuthenticationFailed`; everything else that keeps the
connection from coming up raises :class:`~instantmentor_client.errors.NotConnected` or
:class:`~instantmentor_client.errors.ProtocolViolation`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from instantmentor_client import _transport
from instantmentor_client._transport import ConnectionClosed, InvalidHandshake, Socket
from instantmentor_client.errors import (
    AuthenticationFailed,
    NotConnected,
    ProtocolViolation,
    ServerBusy,
)
from instantmentor_client.models import Session

TokenProvider = Callable[[], str | Awaitable[str]]

CLOSE_UNAUTHORIZED = 4401


async def resolve_token(token: str | None, token_provider: TokenProvider | None) -> str:
    """``token``, or else what ``token_provider`` (sync or async) returns now."""
    if token is not None:
        return token
    assert token_provider is not None
    try:
        provided = token_provider()
        if inspect.isawaitable(provided):
            provided = await provided
    except Exception as exc:
        raise NotConnected(f"token provider failed: {exc!r}") from exc
    return str(provided)


async def open_connection(
    url: str, token: str, *, connect_timeout: float, max_frame_bytes: int | None
) -> tuple[Socket, dict[str, Any]]:
    """One connection attempt: socket + ``connected`` frame (its data is returned)."""
    try:
        ws = await _transport.open_socket(
            url, token, open_timeout=connect_timeout, max_size=max_frame_bytes
        )
    except InvalidHandshake as exc:
        status = _transport.http_status(exc)
        if status in (401, 403):
            raise AuthenticationFailed(f"the server refused the token (HTTP {status})") from exc
        raise NotConnected(f"WebSocket handshake with {url} failed: {exc}") from exc
    except (OSError, TimeoutError, ConnectionClosed) as exc:
        raise NotConnected(f"cannot connect to {url}: {exc!r}") from exc
    try:
        raw = await asyncio.wait_for(ws.recv(), connect_timeout)
    except ConnectionClosed as exc:
        code, reason = _transport.close_info(exc, ws)
        if code == CLOSE_UNAUTHORIZED:
            raise AuthenticationFailed(reason or "the server refused the token") from None
        message = f"closed before connected ({code} {reason})".strip()
        hint = _transport.retry_after_s(code, reason)
        if hint is not None:
            raise ServerBusy(message, retry_after_s=hint) from None
        raise NotConnected(message) from None
    except TimeoutError:
        _transport.abort(ws)
        raise NotConnected("no connected frame within connect_timeout") from None
    try:
        frame = json.loads(raw)
        if frame.get("event") != "connected":
            raise ProtocolViolation(f"expected connected first, got {frame.get('event')!r}")
        data = dict(frame["data"])
        Session.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError, ProtocolViolation) as exc:
        _transport.abort(ws)
        if isinstance(exc, ProtocolViolation):
            raise
        raise ProtocolViolation(f"bad connected frame: {raw!r}") from exc
    return ws, data
