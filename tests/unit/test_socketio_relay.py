"""The relays through which python-engineio gets a request's ``receive`` and ``send``: once the
request is over they let go of the real ones, so engineio's own reference cycles (which the
gateway's collector frees rarely) no longer keep the connection behind them."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from services.gateway.socketio_binding import Relay


class Receiver:
    """Stands for uvicorn's protocol, whose bound method ``receive`` is."""

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}


async def test_a_relay_passes_calls_on_until_cut_then_fails_as_a_gone_connection() -> None:
    receiver = Receiver()
    relay = Relay(receiver.receive)
    assert await relay() == {"type": "websocket.connect"}
    relay.cut()
    with pytest.raises(OSError, match="over"):
        await relay()


async def test_a_cut_relay_keeps_nothing_alive() -> None:
    receiver = Receiver()
    gone = weakref.ref(receiver)
    relay = Relay(receiver.receive)
    gc.disable()
    try:
        del receiver
        assert gone() is not None  # held through the relay
        relay.cut()
        assert gone() is None  # freed by reference counting, without a collection
    finally:
        gc.enable()
