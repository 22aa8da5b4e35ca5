"""A handler's effects, published only after the handler (and its commit) succeeded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.auth import Identity
from shared.protocol.base import ServerPush
from shared.protocol.envelope import CommandOrigin

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Followup:
    """Replaces, on each connection the push reaches, whatever was pending under ``key``:
    ``frame`` after ``after_s`` unless another push with the same ``key`` comes first; with
    no ``frame``, only cancels. (Typing: ``user_typing`` arms ``user_stopped_typing``.)"""

    key: str
    after_s: float = 0.0
    frame: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserPush:
    user_id: str
    frame: dict[str, Any]
    exclude_connection: str | None = None
    followup: Followup | None = None
    also_to: tuple[str, ...] = ()  # the same frame to these users too (one message)


@dataclass(frozen=True, slots=True)
class BroadcastPush:
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConnectionPush:
    reply_to: str
    connection_id: str
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fact:
    name: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Timer:
    event: str
    data: dict[str, Any]
    delay_s: float


@dataclass(frozen=True, slots=True)
class ConnectionClose:
    """Close one connection with ``code`` once the frames already queued for it are written
    (a rule only a service can check, such as the connection cap over all gateways)."""

    reply_to: str
    connection_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class UserSpread:
    """Tell one gateway (its queue) over how many gateways a user's sockets are."""

    reply_to: str
    user_id: str
    gateways: int


Push = UserPush | BroadcastPush | ConnectionPush | ConnectionClose | UserSpread


@dataclass
class Outbox:
    reply: dict[str, Any] | None = None
    pushes: list[Push] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)

    def push_user(
        self,
        user_id: str,
        push: ServerPush,
        *,
        exclude_connection: str | None = None,
        followup: Followup | None = None,
    ) -> None:
        """To every connection of ``user_id`` (but ``exclude_connection``) on every gateway."""
        self.pushes.append(UserPush(user_id, push.frame, exclude_connection, followup))

    def push_all(self, push: ServerPush) -> None:
        """To every connected user."""
        self.pushes.append(BroadcastPush(push.frame))

    def push_connection(self, origin: CommandOrigin, push: ServerPush) -> None:
        """To one connection only (catch-up after connect)."""
        self.pushes.append(ConnectionPush(origin.reply_to, origin.connection_id, push.frame))

    def close_connection(self, origin: CommandOrigin, code: int, reason: str) -> None:
        """Have the gateway close one connection (after what is queued for it)."""
        self.pushes.append(ConnectionClose(origin.reply_to, origin.connection_id, code, reason))

    def tell_spread(self, gateway_queue: str, user_id: str, gateways: int) -> None:
        """Tell a gateway over how many gateways ``user_id``'s sockets are now."""
        self.pushes.append(UserSpread(gateway_queue, user_id, gateways))

    def emit(self, fact: str, data: dict[str, Any]) -> None:
        """Tell other services a domain fact."""
        self.facts.append(Fact(fact, data))

    def schedule(self, event: str, data: dict[str, Any], delay_s: float) -> None:
        """Deliver ``event`` back to this service after ``delay_s`` (survives restarts)."""
        self.timers.append(Timer(event, data, delay_s))


@dataclass
class Request:
    """One consumed command as a handler sees it."""

    event: str
    data: dict[str, Any]
    payload: BaseModel | None  # ``data`` validated with the model its route names
    user: Identity | None
    origin: CommandOrigin | None
    redelivered: bool
    deliver_now: Callable[[Push], Awaitable[bool]]
    command_id: str | None = None  # the same on every redelivery of one client command
    out: Outbox = field(default_factory=Outbox)

    def payload_as(self, kind: type[P]) -> P:
        """The validated data of this command, fact or timer, typed (its route names the model)."""
        if not isinstance(self.payload, kind):
            raise TypeError(f"{self.event}: expected {kind.__name__}, got {type(self.payload)}")
        return self.payload

    @property
    def sender(self) -> Identity:
        """The authenticated user of a client command."""
        if self.user is None:
            raise ValueError(f"{self.event} carries no user")
        return self.user
