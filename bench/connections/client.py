"""One student of the benchmark: connects, honours refusals, idles, reconnects when dropped.

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
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

now = time.monotonic  # CLOCK_MONOTONIC: one clock for every process of the machine

GIVE_UP_S = 60.0
TRY_AGAIN = 1013
DEFAULT_RETRY_S = 1.0  # close 1013 without a hint; a gateway that is not listening (restart)
RETRY_HINT = re.compile(r"retry_after_ms=(\d+)")
UPDATE = '"mentor_status_update"'


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


class Student:
    def __init__(self, user_id: str, url: str, compression: bool) -> None:
        self.user_id = user_id
        self.url = url
        self.compression = compression
        self.sessions: list[Session] = []
        self.updates: dict[str, float] = {}  # status_message → first arrival
        self.drops: list[str] = []  # close code of every drop after a session was up
        self.stopping = False
        self._ws: ClientConnection | None = None

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
            ws = await self._open(session, retry_unreachable)
            if ws is None:
                return
            code = await self._read(ws)
            if self.stopping:
                return
            self.drops.append(str(code))
            session = Session(started=now())
            self.sessions.append(session)
            retry_unreachable = True  # a restarting gateway is not listening for a while
            await asyncio.sleep(random.uniform(0.0, 1.0))

    async def _open(self, session: Session, retry_unreachable: bool) -> ClientConnection | None:
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

    async def _attempt(self, session: Session, retry_unreachable: bool) -> ClientConnection:
        session.connected = None
        try:
            ws = await websockets.connect(
                self.url,
                max_size=None,
                compression="deflate" if self.compression else None,
                open_timeout=None,  # bounded by the session's deadline
                ping_interval=None,  # the server pings; websockets answers by itself
                close_timeout=2,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise Refused(f"handshake refused (HTTP {status})", _retry(retry_unreachable)) from exc
        except (OSError, InvalidHandshake) as exc:
            kind = f"handshake refused ({type(exc).__name__})"
            raise Refused(kind, _retry(retry_unreachable)) from exc
        try:
            while session.snapshot is None:
                frame = json.loads(await ws.recv())
                event = frame.get("event")
                if event == "connected":
                    session.connected = now()
                elif event == "mentor_status_snapshot":
                    session.snapshot = now()
                elif event == "mentor_status_update":
                    self._note_update(frame)
        except ConnectionClosed:
            raise close_verdict(ws.close_code, ws.close_reason or "", retry_unreachable) from None
        except BaseException:
            await ws.close()
            raise
        return ws

    async def _read(self, ws: ClientConnection) -> int | None:
        """Until the socket closes: note status updates; return the close code."""
        self._ws = ws
        try:
            async for raw in ws:
                if isinstance(raw, str) and UPDATE in raw:
                    self._note_update(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
        return ws.close_code

    def _note_update(self, frame: dict[str, object]) -> None:
        data = frame.get("data")
        tag = data.get("status_message") if isinstance(data, dict) else None
        if isinstance(tag, str) and tag not in self.updates:
            self.updates[tag] = now()

    async def stop(self) -> None:
        self.stopping = True
        if self._ws is not None:
            await self._ws.close()


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
