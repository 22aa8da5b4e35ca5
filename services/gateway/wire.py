"""uvicorn's WebSocket protocol (``websockets-sansio``) with one ASGI extension: write a text
frame whose bytes were built once, for every socket that gets it.

A push to thousands of sockets (a mentor's status change reaches every student) costs the
gateway one write per socket. Through the ASGI ``send`` each write also goes through
Starlette's and uvicorn's message checks, an ``await``, and websockets' framing of the same
text again; what is left when the frame is built once is the system call. Server frames are
not masked, so without a compression extension the bytes are the same for every socket.
"""

from __future__ import annotations

from collections.abc import Callable

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


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """Offers :data:`PREBUILT_FRAMES` to the app on every socket that negotiated no extension
    (with permessage-deflate each socket compresses with its own state: no shared bytes)."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][PREBUILT_FRAMES] = {"write": self.write_prebuilt}

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
