"""The ``/ws`` endpoint (PROTOCOL §1–2): a WebSocket carrying JSON frames. Admission, the
session and each frame's handling are the same for every binding (:mod:`sessions`)."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.connections import Connection
from services.gateway.frames import parse_frame, salvage_ref_and_event
from services.gateway.sessions import Refusal, Sessions, Unconfirmed
from shared.auth import bearer_token
from shared.protocol.envelope import loads


class SocketHandler:
    """Runs every ``/ws`` WebSocket of one gateway process."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.settings = sessions.settings

    async def serve(self, websocket: WebSocket) -> None:
        try:
            ticket = self.sessions.enter()
        except Refusal as refusal:
            await self._refuse(websocket, refusal)
            return
        try:
            token = websocket.query_params.get("token") or bearer_token(
                websocket.headers.get("authorization")
            )
            try:
                identity = self.sessions.authenticate(token)
            except Refusal as refusal:
                await self._refuse(websocket, refusal)
                return
            await websocket.accept()
            try:
                session = self.sessions.open(websocket, identity, ticket)
            except Refusal as refusal:
                await websocket.close(refusal.code, reason=refusal.message)
                return
            await self.sessions.run(session, lambda c: self._read_loop(websocket, c))
        finally:
            ticket.done()

    @staticmethod
    async def _refuse(websocket: WebSocket, refusal: Refusal) -> None:
        await websocket.accept()
        await websocket.close(refusal.code, reason=refusal.message)

    async def _read_loop(self, websocket: WebSocket, connection: Connection) -> None:
        """Read frames and hand their commands on, at most :data:`MAX_UNCONFIRMED` of them
        not yet confirmed by the broker (see :class:`Unconfirmed`)."""
        unconfirmed = Unconfirmed()
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            published = self.handle_frame(
                connection, text if text is not None else message.get("bytes", b"")
            )
            await unconfirmed.add(published)

    def handle_frame(self, connection: Connection, raw: str | bytes) -> asyncio.Future[None] | None:
        """Answer or forward one client frame; for a command, the future of its publish."""
        max_bytes = self.settings.max_frame_bytes
        return self.sessions.handle(
            connection,
            lambda: parse_frame(raw, connection.identity.role, max_bytes),
            lambda: salvage_ref_and_event_quietly(raw, max_bytes),
        )


def salvage_ref_and_event_quietly(
    raw: str | bytes, max_bytes: int
) -> tuple[str | None, str | None]:
    if isinstance(raw, bytes) or len(raw) > max_bytes:
        return None, None
    try:
        return salvage_ref_and_event(loads(raw))
    except ValueError:
        return None, None
