"""Building blocks of every payload schema."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from shared.auth import USER_ID_PATTERN

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


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


class Empty(Payload):
    """An event without fields."""
