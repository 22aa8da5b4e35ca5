"""The exchanges' names are a contract with every running process and broker."""

from __future__ import annotations

from aio_pika import ExchangeType

from shared.amqp.topology import Topology


def test_every_exchange_is_named_under_the_namespace_with_its_type() -> None:
    t = Topology("im")
    assert (t.commands, t.domain, t.push, t.dead_letters) == (
        "im.commands",
        "im.domain",
        "im.push",
        "im.dead",
    )
    assert t.exchanges() == [
        ("im.commands", ExchangeType.TOPIC),
        ("im.domain", ExchangeType.TOPIC),
        ("im.push", ExchangeType.TOPIC),
        ("im.dead", ExchangeType.DIRECT),
    ]


def test_a_topology_is_its_namespace() -> None:
    assert Topology("a") == Topology("a") != Topology("b")
    assert hash(Topology("a")) == hash(Topology("a"))
