"""A robust AMQP connection over the nodes of a cluster.

aio-pika's ``RobustConnection`` reconnects, restores its channels (their queues, exchanges and
bindings) and runs its reconnect callbacks, but always to the one URL it was given. This one
moves to the next URL whenever the connection closes or an attempt to open it fails, so a
process whose node died connects to the next node that answers (every node of a cluster
serves every queue), and everything after that is aio-pika's own recovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aio_pika
from yarl import URL


class FailoverConnection(aio_pika.RobustConnection):
    """Connects to ``urls[first]`` first; each close or failed attempt moves to the next."""

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any) -> None:
        if not urls:
            raise ValueError("no broker URL")
        self.urls = [URL(url) for url in urls]
        self._index = first % len(self.urls)
        super().__init__(self.urls[self._index], **kwargs)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Called when an open connection is lost and when an attempt fails, before aio-pika
        # schedules the next attempt: that one goes to the next node.
        self._index = (self._index + 1) % len(self.urls)
        self.url = self.urls[self._index]
        await super()._on_connection_close(closing)
