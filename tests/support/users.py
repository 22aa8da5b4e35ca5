"""The users of one test on a stack that a whole module shares: ids of their own, and the
connections the test opened, closed at the end."""

from __future__ import annotations

import asyncio
import uuid
from types import TracebackType
from typing import Protocol, Self, TypeVar

from tests.support.stack import Gateway, Stack


class Closable(Protocol):
    async def close(self) -> None: ...


Client = TypeVar("Client", bound=Closable)


class Users:
    """``id("alice")`` is ``alice-<suffix>``, a suffix of this test alone. A module's file
    adds its ``connect`` (WebSocket, SDK, Socket.IO) and passes each client to :meth:`keep`;
    ``async with`` closes them all."""

    def __init__(self, stack: Stack, gateway: Gateway | None = None) -> None:
        self.stack = stack
        self.gateway = stack.gateways[0] if gateway is None else gateway
        self.suffix = uuid.uuid4().hex[:6]
        self.clients: list[Closable] = []

    def id(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def token(self, name: str, role: str = "student") -> str:
        return self.stack.token(self.id(name), role, name.title())

    def keep(self, client: Client) -> Client:
        self.clients.append(client)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
