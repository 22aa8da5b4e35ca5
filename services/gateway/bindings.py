"""The per-user bindings of a gateway's queue, batched.

A push to a user reaches this gateway while its queue is bound under ``user.<id>``: bound
while the user has a connection here, unbound after their last one. A bind is a broker round
trip; one at a time they cap a connect storm at a few hundred connections per second and
queue every new socket behind the others. Here the users whose connections changed within a
few milliseconds are reconciled together: every missing binding is sent without waiting for
its reply (AMQP ``nowait``) and the last one with it — the broker applies a channel's methods
in order, so that one reply means the whole batch is in place.
"""

from __future__ import annotations

from services.gateway.registry import Registry
from shared.amqp.broker import Broker
from shared.amqp.topology import user_key
from shared.batching import Batcher


class Bindings:
    def __init__(
        self, broker: Broker, registry: Registry, queue_name: str, window_s: float
    ) -> None:
        self._broker = broker
        self._registry = registry
        self._queue_name = queue_name
        self._bound: set[str] = set()
        self._batcher: Batcher[str] = Batcher(self._reconcile, window_s)

    async def sync(self, user_id: str) -> None:
        """Make the binding of ``user_id`` match whether they have a connection here; returns
        once it does (raises :class:`shared.errors.Unavailable` when the broker is away)."""
        await self._batcher.add(user_id)

    def forget(self) -> None:
        """The broker connection was lost, and the exclusive queue's bindings with it."""
        self._bound.clear()

    def is_bound(self, user_id: str) -> bool:
        return user_id in self._bound

    async def _reconcile(self, users: list[str]) -> None:
        exchange = self._broker.topology.push
        changed = dict.fromkeys(users)  # each once, in order
        wanted = [u for u in changed if self._registry.has_user(u) and u not in self._bound]
        unwanted = [u for u in changed if not self._registry.has_user(u) and u in self._bound]
        if wanted:
            keys = [user_key(u) for u in wanted]
            await self._broker.bind_many(self._queue_name, exchange, keys)
            self._bound.update(wanted)
        for user_id in unwanted:  # AMQP has no nowait unbind: one round trip each
            await self._broker.unbind(self._queue_name, exchange, user_key(user_id))
            self._bound.discard(user_id)
