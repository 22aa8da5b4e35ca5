"""Frames on the WebSocket (PROTOCOL §2) and the messages that carry them over AMQP."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.errors import ErrorCode


class ClientFrame(BaseModel):
    """``{"event", "data", "ref"}`` as a client sends it."""

    model_config = ConfigDict(strict=True, extra="ignore")

    event: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    ref: str | None = Field(default=None, max_length=64)


def dumps(value: Any) -> str:
    """Compact JSON, the one encoding used on the wire and on the broker."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (what AMQP bodies are), without the round trip."""
    return orjson.dumps(value, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME)


loads = orjson.loads


def push_frame(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "data": data}


def ack_frame(ref: str | None, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": "ack", "ref": ref, "data": data}


def error_frame(
    ref: str | None,
    code: ErrorCode | str,
    message: str,
    event: str | None,
    retry_after_ms: int | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"code": str(code), "message": message, "event": event}
    if retry_after_ms is not None:
        data["retry_after_ms"] = retry_after_ms
    return {"event": "error", "ref": ref, "data": data}


class CommandUser(BaseModel):
    id: str
    role: str
    name: str


class CommandOrigin(BaseModel):
    """Where a command came from: lets a service answer one connection only."""

    gateway_id: str
    connection_id: str
    reply_to: str


class Command(BaseModel):
    """What a service consumes: a client event stamped with the authenticated user,
    a domain fact, or a timer that fired."""

    model_config = ConfigDict(extra="ignore")

    event: str
    data: dict[str, Any] = Field(default_factory=dict)
    user: CommandUser | None = None
    origin: CommandOrigin | None = None


class BatchedCommand(Command):
    """One command of a batch: the commands a gateway had for one service at one moment,
    sent as one AMQP message (one publish, confirm, delivery and ack for all of them). Each
    keeps what a message of its own carries in its properties: its id (the reply's
    ``correlation_id`` and the idempotency key) and the epoch ms by which it must start."""

    id: str
    deadline: int | None = None


COMMAND_BATCH: TypeAdapter[list[BatchedCommand]] = TypeAdapter(list[BatchedCommand])


class Reply(BaseModel):
    """A service's answer to a command that asked for one (``reply_to`` + ``correlation_id``)."""

    ok: bool
    data: dict[str, Any] = Field(default_factory=dict)
    code: str | None = None
    message: str | None = None
    retry_after_ms: int | None = None


# PROTOCOL §1: a user past IM_MAX_CONNECTIONS_PER_USER (refused by the gateway at the
# handshake, or closed by presence when the sockets are on several gateways)
CLOSE_TOO_MANY_CONNECTIONS = 4429
TOO_MANY_CONNECTIONS = "too many connections for this user"

# PROTOCOL v1.1 §2: a server frame stays within 256 KiB. Lists are cut to fit, leaving room
# for the envelope and the reply's other fields.
MAX_SERVER_FRAME_BYTES = 256 * 1024
LIST_BUDGET_BYTES = MAX_SERVER_FRAME_BYTES - 4 * 1024


T = TypeVar("T")


def fit(items: list[T], budget: int = LIST_BUDGET_BYTES, keep_last: bool = False) -> list[T]:
    """The longest run of ``items`` whose JSON fits ``budget`` bytes: from the start (the
    first are the most wanted), or with ``keep_last`` from the end (the newest of a page)."""
    ordered = reversed(items) if keep_last else iter(items)
    kept: list[T] = []
    used = 0
    for item in ordered:
        used += len(dumps_bytes(item)) + 1  # and its comma
        if used > budget:
            break
        kept.append(item)
    return kept[::-1] if keep_last else kept
