"""Building blocks of every payload schema."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Any, ClassVar, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints

from shared.auth import USER_ID_PATTERN, Role
from shared.clock import iso

T = TypeVar("T")

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _iso_of_epoch(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return iso(value)
    return value


# A time on the wire: ISO 8601 UTC with milliseconds. Services keep epoch seconds, so a
# wire model built from a domain object (``model_validate(obj, from_attributes=True)``)
# takes the float and writes the string; nothing copies field lists to convert times.
Timestamp = Annotated[str, BeforeValidator(_iso_of_epoch)]


def _json_size(value: dict[str, Any]) -> int:
    # orjson writes compact UTF-8, as the limit is defined; the stdlib's encoder cost several
    # percent of the gateway's CPU on signals (each carries up to 32 KiB of WebRTC data)
    return len(orjson.dumps(value))


def bounded_object(limit_bytes: int) -> AfterValidator:
    """A JSON object whose compact UTF-8 encoding is at most ``limit_bytes``."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        if _json_size(value) > limit_bytes:
            raise ValueError(f"object larger than {limit_bytes} bytes")
        return value

    return AfterValidator(check)


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class Payload(BaseModel):
    """A client event's ``data``: strict types, unknown fields (e.g. ``sender_id``) ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


ANYONE = frozenset({Role.STUDENT, Role.MENTOR})
MENTORS = frozenset({Role.MENTOR})
STUDENTS = frozenset({Role.STUDENT})


class ClientEvent(Payload):
    """The ``data`` of one client event, and the event's row of the protocol: its name, the
    process that handles it, who may send it, and whether it is transient (ARCHITECTURE "Two
    classes of traffic": nothing is stored, a lost one is replaced by the next; it takes the
    light path, a bounded non-persistent queue without confirms, shed first under load).

    A class that sets ``EVENT`` is an event; ``shared.protocol.registry`` collects them."""

    EVENT: ClassVar[str]
    SERVICE: ClassVar[str]
    ROLES: ClassVar[frozenset[Role]] = ANYONE
    TRANSIENT: ClassVar[bool] = False


class ServerPush(BaseModel):
    """The ``data`` of one frame the server pushes; ``EVENT`` names it. Services hand these
    to ``req.out.push_*``, so a push's name and its data cannot disagree."""

    EVENT: ClassVar[str]

    @cached_property
    def frame(self) -> dict[str, Any]:
        """The whole frame, made once: pushing one model to several users pushes one frame
        object, which the publisher sends as one message."""
        return {"event": self.EVENT, "data": self.model_dump()}


def named_subclasses(base: type[T]) -> Iterator[type[T]]:
    """Every subclass of ``base`` (at any depth) that sets ``EVENT`` itself, in definition
    order."""
    for cls in base.__subclasses__():
        if "EVENT" in vars(cls):
            yield cls
        yield from named_subclasses(cls)
