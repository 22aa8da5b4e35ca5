"""The protocol's two tables, collected from its models: every client event (who may send
it, which process handles it, its schema) and every frame the server pushes (its schema).

The gateway validates frames against the first; every service dispatches by it; together
they generate docs/asyncapi.yaml. Adding an event to the protocol means adding its model,
naming its ``EVENT``, to the module of its section (``calls``, ``chat``, ``presence``,
``help``, ``session``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.auth import Role
from shared.errors import Forbidden, InvalidPayload, UnknownEvent
from shared.protocol import calls, chat, help, presence, session
from shared.protocol.base import ClientEvent, ServerPush, named_subclasses

M = TypeVar("M", ClientEvent, ServerPush)

GATEWAY = session.GATEWAY
# Every service, in the order `make up` starts them (presence first: the others ask it).
SERVICES = ("presence", "chat", "calls", "help")
SECTIONS = (session, calls, chat, presence, help)  # imported above: their models are defined


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    service: str
    payload: type[ClientEvent]
    roles: frozenset[Role]
    transient: bool


def by_event(models: Iterable[type[M]]) -> dict[str, type[M]]:
    """``models`` by the event each names; two naming one event is a mistake, refused."""
    table: dict[str, type[M]] = {}
    for model in models:
        if model.EVENT in table:
            raise TypeError(f"{model.__name__} and {table[model.EVENT].__name__} name one event")
        table[model.EVENT] = model
    return table


CLIENT_EVENTS: dict[str, EventSpec] = {
    name: EventSpec(name, event.SERVICE, event, event.ROLES, event.TRANSIENT)
    for name, event in by_event(named_subclasses(ClientEvent)).items()
}
TRANSIENT = frozenset(name for name, spec in CLIENT_EVENTS.items() if spec.transient)

SERVER_PUSHES: dict[str, type[ServerPush]] = by_event(named_subclasses(ServerPush))


def spec_for(event: str) -> EventSpec:
    try:
        return CLIENT_EVENTS[event]
    except KeyError:
        raise UnknownEvent(f"unknown event {event!r}") from None


def authorize(spec: EventSpec, role: Role) -> None:
    if role not in spec.roles:
        allowed = " or ".join(sorted(r.value for r in spec.roles))
        raise Forbidden(f"{spec.name} is for a {allowed}, not a {role.value}")


def validate_payload(spec: EventSpec, data: dict[str, Any]) -> ClientEvent:
    """Parse ``data`` with the event's schema, turning pydantic's errors into one clear message."""
    try:
        return spec.payload.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "data"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
