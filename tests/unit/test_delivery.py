"""A Delivery reads its frame's fields when asked for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from shared.amqp.delivery import Delivery


def _delivery(**properties: Any) -> Delivery:
    message = SimpleNamespace(
        body=b"{}",
        header=SimpleNamespace(properties=SimpleNamespace(**properties)),
        routing_key="chat.send_message",
        delivery=SimpleNamespace(redelivered=True),
        delivery_tag=1,
    )
    return Delivery(message, channel=None)  # type: ignore[arg-type]


def test_a_delivery_reads_its_basic_properties() -> None:
    delivery = _delivery(
        headers={"x-attempts": 2},
        message_type="batch",
        reply_to="im.gateway.g1",
        correlation_id="c1",
        message_id="m1",
    )
    assert delivery.headers == {"x-attempts": 2}
    assert delivery.type == "batch"
    assert delivery.reply_to == "im.gateway.g1"
    assert delivery.correlation_id == "c1"
    assert delivery.message_id == "m1"
    assert delivery.routing_key == "chat.send_message"
    assert delivery.redelivered is True
    assert delivery.body == b"{}"


def test_a_property_the_frame_lacks_reads_as_none() -> None:
    delivery = _delivery(
        headers=None, message_type=None, reply_to=None, correlation_id=None, message_id=None
    )
    assert (delivery.headers, delivery.type, delivery.reply_to) == (None, None, None)
    assert (delivery.correlation_id, delivery.message_id) == (None, None)
