"""One student of the benchmark: connects, honours refusals, idles, reconnects when dropped.

Sockets are picows clients: a frame is handled in the callback that parsed it (no task
wake-up, no queue per frame), so the generator spends ~5× less CPU per frame than with
``websockets``' asyncio client. It shares two cores with what it measures, and a status
change to 5,000 students is 5,000 frames to read at once: the cheaper the reader, the more
the times are the stack's own.

A *session* is one stretch from "I want to be connected" (the storm's scheduled start, or
the moment the socket dropped) to having the ``mentor_status_snapshot`` again, or to giving
up. Every attempt inside it counts: the times run from the session's start, retries are
counted by why they happened, and after ``GIVE_UP_S`` the session is a failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import zlib
from dataclasses import dataclass, field

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

now = time.monotonic  # CLOCK_MONOTONIC: one clock for every process of the machine

GIVE_UP_S = 60.0
TRY_AGAIN = 1013
DEFAULT_RETRY_S = 1.0  # close 1013 without a hint; a gateway that is not listening (restart)
RETRY_HINT = re.compile(r"retry_after_ms=(\d+)")
UPDATE = b'"mentor_status_update"'
# The client's offer; its own frames (close, pong) go uncompressed, which the extension allows
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"


@dataclass
class Session:
    started: float  # scheduled start, or when the drop was seen
    first_attempt: float | None = None  # when the first handshake actually began
    connected: float | None = None
    snapshot: float | None = None
    failure: str | None = None
    detail: str | None = None  # the error behind a refusal that ended the session
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.snapshot is not None or self.failure is not None


class Refused(Exception):
    """This attempt did not get a session; ``retry_s`` None: give up (a failure)."""

    def __init__(self, kind: str, retry_s: float | None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_s = retry_s


def close_verdict(code: int | None, reason: str, retry_unreachable: bool) -> Refused:
    if code == TRY_AGAIN:
        hint = RETRY_HINT.search(reason)
        if hint:
            return Refused("1013 retry_after_ms", int(hint.group(1)) / 1000)
        return Refused("1013 no hint", DEFAULT_RETRY_S)
    kind = f"close {code if code is not None else 'without frame'}"
    return Refused(kind, DEFAULT_RETRY_S if retry_unreachable else None)


class Socket(WSListener):
    """One WebSocket of a student: its frames, its close code and reason, its end."""

    def __init__(self, student: Student, session: Session) -> None:
        self.student = student
        self.session = session
        # permessage-deflate with context takeover: one inflater for the socket's life
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS) if student.compression else None
        loop = asyncio.get_running_loop()
        self.greeted: asyncio.Future[None] = loop.create_future()  # snapshot, or the end
        self.gone: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            raw = frame.get_payload_as_bytes()
            if frame.rsv1 and self.inflater is not None:  # compressed (RFC 7692 §7.2.2)
                raw = self.inflater.decompress(raw + DEFLATE_TAIL)
            if self.session.snapshot is None:
                self._greeting(json.loads(raw))
            elif UPDATE in raw:
                self.student.note_update(json.loads(raw))
        elif frame.msg_type == WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2])
                self.close_reason = payload[2:].decode(errors="replace")
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def _greeting(self, frame: dict[str, object]) -> None:
        event = frame.get("event")
        if event == "connected":
            self.session.connected = now()
        elif event == "mentor_status_snapshot":
            self.session.snapshot = now()
            if not self.greeted.done():
                self.greeted.set_result(None)
        elif event == "mentor_status_update":
            self.student.note_update(frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for future in (self.greeted, self.gone):
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


class Student:
    def __init__(self, user_id: str, url: str, compression: bool) -> None:
        self.user_id = user_id
        self.compression = compression
        self.url = url
        self.sessions: list[Session] = []
        self.updates: dict[str, float] = {}  # status_message → first arrival
        self.drops: list[str] = []  # close code of every drop after a session was up
        self.stopping = False
        self._socket: Socket | None = None

    @property
    def up(self) -> bool:
        return bool(self.sessions) and self.sessions[-1].snapshot is not None

    async def live(self, start_at: float) -> None:
        """Connect at ``start_at``; then stay connected (reconnecting) until :meth:`stop`."""
        session = Session(started=start_at)
        self.sessions.append(session)
        await asyncio.sleep(max(0.0, start_at - now()))
        retry_unreachable = False  # the storm counts a refused handshake as a failure
        while not self.stopping:
            socket = await self._open(session, retry_unreachable)
            if socket is None:
                return
            self._socket = socket
            await socket.gone
            self._socket = None
            if self.stopping:
                return
            self.drops.append(str(socket.close_code))
            session = Session(started=now())
            self.sessions.append(session)
            retry_unreachable = True  # a restarting gateway is not listening for a while
            await asyncio.sleep(random.uniform(0.0, 1.0))

    async def _open(self, session: Session, retry_unreachable: bool) -> Socket | None:
        deadline = session.started + GIVE_UP_S
        while True:
            session.first_attempt = session.first_attempt or now()
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    return await self._attempt(session, retry_unreachable)
            except TimeoutError:
                stage = "snapshot" if session.connected else "connected"
                session.failure = f"timeout (no {stage} within {GIVE_UP_S:.0f} s)"
                return None
            except Refused as refused:
                if refused.retry_s is None:
                    session.failure = refused.kind
                    session.detail = causes(refused.__cause__ or refused)
                    return None
                session.retries[refused.kind] = session.retries.get(refused.kind, 0) + 1
                wait_s = refused.retry_s * (1 + random.uniform(0.0, 0.5))
                if now() + wait_s >= deadline:
                    session.failure = f"gave up after {refused.kind}"
                    return None
                await asyncio.sleep(wait_s)

    async def _attempt(self, session: Session, retry_unreachable: bool) -> Socket:
        session.connected = None
        try:
            _transport, socket = await ws_connect(
                lambda: Socket(self, session),
                self.url,
                websocket_handshake_timeout=None,  # bounded by the session's deadline
                extra_headers={"Sec-WebSocket-Extensions": DEFLATE_OFFER}
                if self.compression
                else None,
                enable_auto_pong=True,  # the server pings
                use_aiofastnet=False,
            )
        except WSInvalidStatusError as exc:
            status = exc.response.status if exc.response is not None else "?"
            raise Refused(f"handshake refused (HTTP {status})", _retry(retry_unreachable)) from exc
        except (OSError, WSError) as exc:
            kind = f"handshake refused ({type(exc).__name__})"
            raise Refused(kind, _retry(retry_unreachable)) from exc
        if not isinstance(socket, Socket):  # the connection closed during the handshake
            raise Refused("handshake refused (connection closed)", _retry(retry_unreachable))
        try:
            await socket.greeted
        except BaseException:
            socket.close()
            raise
        if session.snapshot is None:  # closed before the snapshot
            raise close_verdict(socket.close_code, socket.close_reason, retry_unreachable)
        return socket

    def note_update(self, frame: dict[str, object]) -> None:
        data = frame.get("data")
        tag = data.get("status_message") if isinstance(data, dict) else None
        if isinstance(tag, str) and tag not in self.updates:
            self.updates[tag] = now()

    async def stop(self) -> None:
        self.stopping = True
        if self._socket is not None:
            self._socket.close()
            await self._socket.gone


def _retry(retry_unreachable: bool) -> float | None:
    return DEFAULT_RETRY_S if retry_unreachable else None


def _loop_time(monotonic_deadline: float) -> float:
    """asyncio.timeout_at wants the loop's clock; convert from ``now()``'s."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - now())


def causes(exc: BaseException) -> str:
    """``repr`` of an error and of what caused it, outermost first."""
    chain: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 4:
        chain.append(repr(current))
        current = current.__cause__ or current.__context__
    return " <- ".join(chain)[:400]
