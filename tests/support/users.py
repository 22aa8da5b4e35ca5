"""The users of one test on a stack that a whole module shares: ids of their own, and the
connections the test opened, closed at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

import pytest

from tests.support.client import WsClient
from tests.support.stack import Gateway, Stack


async def connect(
    stack: Stack, gateway: Gateway, user: str, role: str = "student", name: str | None = None
) -> WsClient:
    """``user`` connected over /ws to ``gateway``, its ``connected`` frame received; ``name``
    is ``user.title()`` unless given."""
    token = stack.token(user, role, user.title() if name is None else name)
    client = await WsClient.connect(gateway.ws, token)
    await client.event("connected")
    return client


async def connect_to_chat(
    stack: Stack, gateway: Gateway, user: str, name: str | None = None
) -> WsClient:
    """:func:`connect`, then one round trip to chat: the gateway reads frames once it has
    bound the user and announced the connection, so from then on messages to this user reach
    it live, not in its catch-up."""
    client = await connect(stack, gateway, user, "student", name)
    await client.ack("list_conversations")
    return client


class Closable(Protocol):
    async def close(self) -> None: ...


Client = TypeVar("Client", bound=Closable)


class Users:
    """``id("alice")`` is ``alice-<suffix>``, a suffix of this test alone. A module may add
    other ways to connect (SDK, Socket.IO) that pass each client to :meth:`keep`; the
    ``users`` fixture (:func:`users_fixture`) closes them all."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.gateway: Gateway = stack.gateways[0]
        self.suffix = uuid.uuid4().hex[:6]
        self.clients: list[Closable] = []

    def id(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def token(self, name: str, role: str = "student") -> str:
        return self.stack.token(self.id(name), role, name.title())

    async def ws(self, name: str, role: str = "student") -> WsClient:
        """``name`` connected over /ws (see :func:`connect`)."""
        return self.keep(await connect(self.stack, self.gateway, self.id(name), role, name.title()))

    def keep(self, client: Client) -> Client:
        self.clients.append(client)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients))


U = TypeVar("U", bound=Users)


def users_fixture(kind: type[U]) -> Callable[[Stack], AsyncIterator[U]]:
    """A module's ``users`` fixture: ``users = users_fixture(Users)`` on its ``module_stack``."""

    @pytest.fixture
    async def users(module_stack: Stack) -> AsyncIterator[U]:
        made = kind(module_stack)
        yield made
        await made.close()

    return users
