"""A WebSocket test client speaking PROTOCOL.md frames (raw, so tests see the wire)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable
from typing import Any

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection

from shared.protocol.registry import SERVER_PUSHES
from tests.support.receiving import Receiving

Frame = dict[str, Any]
_refs = itertools.count(1)

# Every server frame that does not match its documented schema (registry.SERVER_PUSHES);
# the conftest fails the test that saw one.
protocol_violations: list[str] = []


def check_frame(frame: Frame) -> None:
    """Record how ``frame`` departs from PROTOCOL (missing/extra fields, wrong types)."""
    event = frame.get("event")
    if event == "ack":
        return
    model = SERVER_PUSHES.get(str(event))
    data = frame.get("data")
    if model is None or not isinstance(data, dict):
        protocol_violations.append(f"unknown server frame: {frame}")
        return
    missing = {name for name, field in model.model_fields.items() if field.is_required()}
    missing -= set(data)
    extra = set(data) - set(model.model_fields)
    if missing or extra:
        protocol_violations.append(f"{event}: missing {sorted(missing)} extra {sorted(extra)}")
    try:
        model.model_validate(data)
    except ValidationError as exc:
        protocol_violations.append(f"{event}: {exc}")


def bearer(token: str) -> dict[str, str]:
    """The HTTP header that presents ``token``."""
    return {"Authorization": f"Bearer {token}"}


class WsClient(Receiving[Frame]):
    item_name = "frame"

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__()
        self.connection = connection
        self.sizes: list[int] = []  # each frame's size in bytes on the wire
        self.closed_code: int | None = None
        self._reader = asyncio.create_task(self._read())

    @property
    def frames(self) -> list[Frame]:
        """Every frame received, in order."""
        return self.received

    @classmethod
    async def connect(cls, url: str, token: str | None, **kwargs: Any) -> WsClient:
        target = f"{url}?token={token}" if token else url
        connection = await websockets.connect(target, max_size=None, **kwargs)
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                self.sizes.append(len(raw if isinstance(raw, bytes) else raw.encode()))
                frame = json.loads(raw)
                check_frame(frame)
                await self._receive(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed_code = self.connection.close_code
            await self._end()

    def _why_ended(self) -> str:
        return f"connection closed ({self.closed_code})"

    def _recent(self) -> str:
        return f"last events: {[f.get('event') for f in self.frames[-20:]]}"

    async def send(
        self, event: str, data: dict[str, Any] | None = None, ref: str | None = None
    ) -> None:
        frame: Frame = {"event": event}
        if data is not None:
            frame["data"] = data
        if ref is not None:
            frame["ref"] = ref
        await self.connection.send(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.connection.send(text)

    def mentors_seen(self) -> dict[str, dict[str, Any]]:
        """Mentor statuses as a client knows them (see :func:`merge_mentor_views`)."""
        return merge_mentor_views((f.get("event"), f.get("data")) for f in self.frames)

    async def event(
        self, name: str, timeout: float = 10.0, after: Frame | None = None, **match: Any
    ) -> Frame:
        """The first ``name`` frame whose data has all of ``match`` (received after ``after``)."""
        start = 0 if after is None else next(i for i, f in enumerate(self.frames) if f is after) + 1
        return await self.wait_for(
            lambda f: (
                f.get("event") == name
                and all(f.get("data", {}).get(k) == v for k, v in match.items())
                and any(g is f for g in self.frames[start:])
            ),
            timeout,
            f"{name} {match or ''}",
        )

    async def request(
        self, event: str, data: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> Frame:
        """Send with a fresh ``ref``; return its ``ack``/``error`` (or ``pong``) frame."""
        ref = f"r{next(_refs)}"
        await self.send(event, data, ref)
        return await self.wait_for(
            lambda f: f.get("ref") == ref and f.get("event") in ("ack", "error", "pong"),
            timeout,
            f"reply to {event}",
        )

    async def pong(self, timeout: float = 10.0) -> Frame:
        """The reply to a ``ping``, which must be a ``pong``: the connection still works."""
        reply = await self.request("ping", {}, timeout)
        assert reply["event"] == "pong", reply
        return reply

    async def ack(
        self, event: str, data: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Like :meth:`request` but the reply must be an ``ack``; returns its data."""
        reply = await self.request(event, data, timeout)
        assert reply["event"] == "ack", f"{event} failed: {reply}"
        return dict(reply["data"])

    async def error(
        self, event: str, data: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> str:
        """Like :meth:`request` but the reply must be an ``error``; returns its code."""
        reply = await self.request(event, data, timeout)
        assert reply["event"] == "error", f"{event} should have failed: {reply}"
        return str(reply["data"]["code"])

    def count(self, name: str, **match: Any) -> int:
        return sum(
            1
            for f in self.frames
            if f.get("event") == name
            and all(f.get("data", {}).get(k) == v for k, v in match.items())
        )

    async def close(self) -> None:
        await self.connection.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def full_history(client: WsClient, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of the conversation, oldest first, fetched page by page."""
    found: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        data: dict[str, Any] = {"conversation_id": conversation_id, "limit": 100}
        if before is not None:
            data["before_seq"] = before
        page = await client.ack("get_history", data)
        found = page["messages"] + found
        if not page["has_more"]:
            return found
        before = page["messages"][0]["seq"]


def merge_mentor_views(pushes: Iterable[tuple[object, object]]) -> dict[str, dict[str, Any]]:
    """Mentor statuses as a client knows them from its ``(event, data)`` pushes: the snapshot,
    merged with every update received since, by ``updated_at`` (PROTOCOL §1)."""
    known: dict[str, dict[str, Any]] = {}
    for event, data in pushes:
        if event == "mentor_status_snapshot" and isinstance(data, dict):
            views = list(data["mentors"])
        elif event == "mentor_status_update" and isinstance(data, dict):
            views = [data]
        else:
            continue
        for view in views:
            old = known.get(view["mentor_id"])
            if old is None or old["updated_at"] <= view["updated_at"]:
                known[view["mentor_id"]] = view
    return known
