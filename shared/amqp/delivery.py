"""A message as a consumer gets it, straight from aiormq.

aio-pika wraps every delivery in an ``IncomingMessage`` (a dozen attribute copies through a
guarded ``__setattr__``) and a task of its own: about a tenth of the gateway's CPU under
load. A :class:`Delivery` reads the frame's fields lazily and settles on the channel it came
from; after a reconnect that channel is gone, and settling is a no-op (the broker redelivers).
"""

from __future__ import annotations

from typing import Any

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage


class Delivery:
    __slots__ = ("body", "_message", "_channel")

    def __init__(self, message: DeliveredMessage, channel: AbstractChannel) -> None:
        self.body: bytes = message.body
        self._message = message
        self._channel = channel

    @property
    def _properties(self) -> Any:
        return self._message.header.properties

    @property
    def headers(self) -> dict[str, Any] | None:
        headers: dict[str, Any] | None = self._properties.headers
        return headers

    @property
    def type(self) -> str | None:
        kind: str | None = self._properties.message_type
        return kind

    @property
    def reply_to(self) -> str | None:
        reply_to: str | None = self._properties.reply_to
        return reply_to

    @property
    def correlation_id(self) -> str | None:
        correlation_id: str | None = self._properties.correlation_id
        return correlation_id

    @property
    def message_id(self) -> str | None:
        message_id: str | None = self._properties.message_id
        return message_id

    @property
    def routing_key(self) -> str | None:
        return self._message.routing_key

    @property
    def redelivered(self) -> bool:
        return bool(getattr(self._message.delivery, "redelivered", False))

    async def ack(self) -> None:
        await self._settle(lambda tag: self._channel.basic_ack(tag))

    async def nack(self, requeue: bool = True) -> None:
        await self._settle(lambda tag: self._channel.basic_nack(tag, requeue=requeue))

    async def reject(self, requeue: bool = False) -> None:
        await self._settle(lambda tag: self._channel.basic_reject(tag, requeue=requeue))

    async def _settle(self, settle: Any) -> None:
        tag = self._message.delivery_tag
        if tag is None or self._channel.is_closed:
            return  # the channel it came on is gone: the broker redelivers it
        try:
            await settle(tag)
        except aiormq.exceptions.ChannelInvalidStateError:
            pass
