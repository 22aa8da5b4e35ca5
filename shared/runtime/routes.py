"""What a service does, as one typed table: every kind of work it takes — client commands,
domain facts, its own timers — is a :class:`Route` of a name, the pydantic model its data
must fit, and the handler. The runner validates the data with the model before the handler
runs, the same way for all three; the handler reads the result with ``req.payload_as``.

* A command has a sender waiting for an answer: data that does not fit is answered
  ``invalid_payload`` (and the sender's role is checked against ``shared/protocol/registry``).
* A fact or a timer has nobody to answer, and retrying it cannot help: data that does not fit
  is logged and dead-lettered (``<ns>.<service>.dead``), like an undecodable message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.auth import Identity
from shared.errors import InternalError, InvalidPayload
from shared.protocol.domain import FACTS
from shared.protocol.registry import CLIENT_EVENTS, authorize, describe_validation_error
from shared.runtime.outbox import Request

Handler = Callable[[Request], Awaitable[None]]


class Kind(Enum):
    COMMAND = "command"  # from a user (client frame, or the gateway's HTTP API): answered
    FACT = "fact"  # from another process, on the domain exchange
    TIMER = "timer"  # from this service: a durable timer, or a background job's hand-off


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    kind: Kind
    model: type[BaseModel]
    handler: Handler


Routes = Mapping[str, Route]


class MalformedWork(Exception):
    """A fact or timer whose data does not fit its model: dead-lettered, never retried."""


def command(name: str, handler: Handler, model: type[BaseModel] | None = None) -> Route:
    """A user's command. A client event takes its model from the protocol registry; a
    command of the gateway's HTTP API, which the registry does not list, names its own."""
    spec = CLIENT_EVENTS.get(name)
    if model is None:
        if spec is None:
            raise ValueError(f"{name} is not a client event: name its model")
        model = spec.payload
    elif spec is not None and spec.payload is not model:
        raise ValueError(f"{name}: the registry's model is {spec.payload.__name__}")
    return Route(name, Kind.COMMAND, model, handler)


def fact(name: str, handler: Handler) -> Route:
    """A domain fact this service follows; its model is ``shared.protocol.domain.FACTS``'s."""
    return Route(name, Kind.FACT, FACTS[name], handler)


def timer(name: str, model: type[BaseModel], handler: Handler) -> Route:
    """Work this service sends itself (a durable timer, a background job's command)."""
    return Route(name, Kind.TIMER, model, handler)


def routes(*rows: Route) -> dict[str, Route]:
    """The table of a service, by name (a name twice is a mistake)."""
    table: dict[str, Route] = {}
    for row in rows:
        if row.name in table:
            raise ValueError(f"{row.name} routed twice")
        table[row.name] = row
    return table


def validate(route: Route, data: dict[str, Any], user: Identity | None) -> BaseModel:
    """The typed data of one piece of work, as its handler gets it (see the module doc)."""
    if route.kind is Kind.COMMAND:
        if user is None:
            raise InternalError(f"command {route.name} without a user")
        spec = CLIENT_EVENTS.get(route.name)
        if spec is not None:
            authorize(spec, user.role)
    try:
        return route.model.model_validate(data)
    except ValidationError as exc:
        if route.kind is Kind.COMMAND:
            raise InvalidPayload(describe_validation_error(exc)) from None
        raise MalformedWork(f"{route.name}: {describe_validation_error(exc)}") from None
