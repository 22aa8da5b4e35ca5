"""The gateway's per-user bindings, batched (the broker replaced by a recorder)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from services.gateway.bindings import Bindings
from services.gateway.registry import Registry
from shared.amqp.broker import Broker
from shared.errors import Unavailable


class RecordingBroker:
    def __init__(self) -> None:
        self.topology = SimpleNamespace(push="im.push")
        self.binds: list[list[str]] = []
        self.unbinds: list[str] = []
        self.fail = False

    async def bind_many(self, queue: str, exchange: str, keys: list[str]) -> None:
        assert (queue, exchange) == ("gw.q", "im.push")
        if self.fail:
            raise Unavailable("broker away")
        self.binds.append(keys)

    async def unbind(self, queue: str, exchange: str, key: str) -> None:
        self.unbinds.append(key)


class Users(Registry):
    """A registry whose users are just names (no sockets)."""

    def __init__(self) -> None:
        super().__init__()
        self.present: set[str] = set()

    def has_user(self, user_id: str) -> bool:
        return user_id in self.present


def bindings(broker: RecordingBroker, users: Users) -> Bindings:
    return Bindings(cast(Broker, cast(Any, broker)), users, "gw.q", window_s=0.001)


async def test_users_connecting_together_are_bound_in_one_batch() -> None:
    broker, users = RecordingBroker(), Users()
    users.present |= {f"u{i}" for i in range(50)}
    b = bindings(broker, users)
    await asyncio.gather(*(b.sync(f"u{i}") for i in range(50)))
    assert broker.binds == [[f"user.u{i}" for i in range(50)]]
    await b.sync("u1")  # already bound: nothing to do
    assert len(broker.binds) == 1 and b.is_bound("u1")


async def test_the_last_connection_gone_unbinds_and_a_quick_return_binds_again() -> None:
    broker, users = RecordingBroker(), Users()
    b = bindings(broker, users)
    users.present.add("alice")
    await b.sync("alice")
    users.present.discard("alice")
    await b.sync("alice")
    assert broker.unbinds == ["user.alice"] and not b.is_bound("alice")
    users.present.add("alice")  # left and came back within one batch: stays bound
    gone, back = b.sync("alice"), b.sync("alice")
    await asyncio.gather(gone, back)
    assert broker.binds == [["user.alice"], ["user.alice"]] and b.is_bound("alice")


async def test_a_failed_batch_is_reported_to_each_waiter_and_retried_on_the_next_sync() -> None:
    broker, users = RecordingBroker(), Users()
    users.present |= {"a", "b"}
    b = bindings(broker, users)
    broker.fail = True
    outcomes = await asyncio.gather(b.sync("a"), b.sync("b"), return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert not b.is_bound("a")
    broker.fail = False
    await b.sync("a")
    assert broker.binds == [["user.a"]]


async def test_after_a_broker_reconnect_everyone_is_bound_again() -> None:
    broker, users = RecordingBroker(), Users()
    users.present.add("a")
    b = bindings(broker, users)
    await b.sync("a")
    b.forget()
    await b.sync("a")
    assert broker.binds == [["user.a"], ["user.a"]]
