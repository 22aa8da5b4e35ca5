"""uvicorn's WebSocket protocol (``websockets-sansio``) with one ASGI extension: write a text
frame whose bytes were built once, for every socket that gets it; and uvicorn's HTTP protocol,
which lets go of a socket it handed to the WebSocket protocol.

A push to thousands of sockets (a mentor's status change reaches every student) costs the
gateway one write per socket. Through the ASGI ``send`` each write also goes through
Starlette's and uvicorn's message checks, an ``await``, and websockets' framing of the same
text again; what is left when the frame is built once is the system call. Server frames are
not masked, so without a compression extension the bytes are the same for every socket.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

# scope["extensions"][PREBUILT_FRAMES] = {"write": WritePrebuilt}, on sockets that can take one
PREBUILT_FRAMES = "instantmentor.prebuilt_frames"

WritePrebuilt = Callable[[bytes], bool]


class OutgoingFrame:
    """One text frame for any number of sockets; its wire bytes are built on first use."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The whole WebSocket frame (FIN, text opcode, length, payload), unmasked."""
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
        return self._wire


# A closed connection must be freed when its last reference goes, not by the garbage collector:
# the gateway considers the collector's oldest generation rarely (shared/gc_policy.py), so an
# object kept by a reference cycle stays until then. The classes below break the cycles that
# each WebSocket used to leave behind (about 21 KiB per connection under churn, all three).


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools), which drops its parser once it has handed the socket
    to the WebSocket protocol. The parser calls back into the protocol that holds it; uvicorn
    breaks that cycle in ``connection_lost``, which is never called here after an upgrade."""

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]  # as uvicorn's own connection_lost does


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """Offers :data:`PREBUILT_FRAMES` to the app on every socket that negotiated no extension
    (with permessage-deflate each socket compresses with its own state: no shared bytes).

    When the connection is lost it breaks two cycles: the offer (a method of this protocol, in
    the scope this protocol holds) is withdrawn, and websockets' parser is closed. The parser
    is a generator of websockets' ``ServerProtocol`` whose frame holds that protocol, and it
    never finishes by itself (after the end of the stream it waits at a last ``yield``); no
    data reaches it once the connection is lost."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][PREBUILT_FRAMES] = {"write": self.write_prebuilt}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.conn.parser.close()
        scope = getattr(self, "scope", None)  # none yet if lost during the handshake
        if scope is not None:
            scope["extensions"].pop(PREBUILT_FRAMES, None)

    def write_prebuilt(self, wire: bytes) -> bool:
        """Write ``wire`` now if the socket is open and its buffer below the high-water mark;
        False otherwise, and the caller sends through ASGI (which waits, or fails)."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(wire)
        return True
