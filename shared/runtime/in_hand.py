"""The commands a delivered message carries: its own, or the ones of a gateway's batch."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from shared.amqp import headers as h
from shared.amqp.delivery import Delivery
from shared.protocol.envelope import COMMAND_BATCH, Command


@dataclass(frozen=True, slots=True)
class InHand:
    """One command being handled: a message's own, or one of a batch's."""

    command: Command
    reply_to: str | None
    correlation_id: str | None
    command_id: str | None
    attempts: int  # tries before this one
    redelivered: bool
    deadline_ms: int | None  # epoch ms by which it must start (its sender gives up after)


def commands_of(message: Delivery) -> list[InHand] | None:
    """The commands of a message: its own, or its batch's (None: not readable)."""
    attempts = h.attempts(message.headers)
    redelivered = bool(message.redelivered) or attempts > 0
    try:
        if message.type == h.BATCH:
            return [
                InHand(c, message.reply_to, c.id, c.id, attempts, redelivered, c.deadline)
                for c in COMMAND_BATCH.validate_json(message.body)
            ]
        command = Command.model_validate_json(message.body)
    except ValidationError:
        return None
    deadline = (message.headers or {}).get(h.DEADLINE)
    return [
        InHand(
            command,
            message.reply_to,
            message.correlation_id,
            message.message_id,
            attempts,
            redelivered,
            deadline if isinstance(deadline, int) else None,
        )
    ]
