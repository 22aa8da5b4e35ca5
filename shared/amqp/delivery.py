"""A message as a consumer gets it, straight from aiormq.

aio-pika wraps every delivery in an ``IncomingMessage`` (a dozen attribute copies through a
guarded ``__setattr__``) and a task of its own: about a tenth of the gateway's CPU under
load. A :class:`Delivery` reads the frame's fields lazily and settles on the channel it came
from; after a reconnect that channel is gone, and settling is a no-op (the broker redelivers).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage

T = TypeVar("T")


class _BasicProperty(property, Generic[T]):
    """One of a delivery's AMQP basic properties, read from the frame when asked for. Its
    getter is an ``attrgetter``: a read runs no Python code."""

    def __init__(self, name: str) -> None:
        super().__init__(attrgetter(f"_message.header.properties.{name}"))

    if TYPE_CHECKING:  # what a read gives; at run time property's own __get__ serves

        @overload
        def __get__(self, delivery: None, owner: type, /) -> _BasicProperty[T]: ...

        @overload
        def __get__(self, delivery: Any, owner: type | None = None, /) -> T: ...

        def __get__(self, delivery: Any, owner: type | None = None, /) -> Any: ...


class Delivery:
    __slots__ = ("body", "_message", "_channel")

    headers: _BasicProperty[dict[str, Any] | None] = _BasicProperty("headers")
    type: _BasicProperty[str | None] = _BasicProperty("message_type")
    reply_to: _BasicProperty[str | None] = _BasicProperty("reply_to")
    correlation_id: _BasicProperty[str | None] = _BasicProperty("correlation_id")
    message_id: _BasicProperty[str | None] = _BasicProperty("message_id")

    def __init__(self, message: DeliveredMessage, channel: AbstractChannel) -> None:
        self.body: bytes = message.body
        self._message = message
        self._channel = channel

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
