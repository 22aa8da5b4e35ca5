"""How a connection's frames are queued and written, with a fake socket (no I/O)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.connections import Connection, SlowConsumer
from services.gateway.ratelimit import TokenBucket
from services.gateway.registry import Registry
from services.gateway.wire import PREBUILT_FRAMES, OutgoingFrame
from shared.auth import Identity, Role


class FakeSocket:
    def __init__(self, stuck: bool = False, gated: bool = False) -> None:
        self.sent: list[str] = []
        self.closed_with: int | None = None
        self.stuck = stuck
        self.sending = asyncio.Event()
        self.gate = asyncio.Event()  # with ``gated``, sends wait for it (a full TCP window)
        if not gated:
            self.gate.set()
        self.scope: dict[str, Any] = {"extensions": {}}

    async def send_text(self, text: str) -> None:
        self.sending.set()
        if self.stuck:  # the client's TCP window stays full
            await asyncio.Event().wait()
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str | None = None) -> None:
        self.closed_with = code
        self.close_reason = reason


def _connection(
    socket: FakeSocket, limit: int = 3, send_timeout_s: float = 5.0, writable: bool = True
) -> Connection:
    connection = Connection(
        cast(WebSocket, cast(Any, socket)),
        Identity("u1", Role.STUDENT, "U"),
        TokenBucket(10, 10),
        queue_limit=limit,
        send_timeout_s=send_timeout_s,
    )
    if writable:
        connection.start_writing()
    return connection


async def ended(connection: Connection) -> None:
    await asyncio.wait_for(asyncio.shield(connection.ended), 1)


def _queued(connection: Connection) -> list[str]:
    return [item for item in connection._outbox if isinstance(item, str)]


async def test_frames_are_written_in_order_then_closed() -> None:
    socket = FakeSocket()
    connection = _connection(socket)
    for text in ("a", "b", "c"):
        connection.send(text)
    connection.close_after_queued(1001)
    connection.send("dropped: the connection is closing")
    await ended(connection)
    assert socket.sent == ["a", "b", "c"]
    assert socket.closed_with == 1001


async def test_a_frame_is_written_at_once_without_a_task_when_the_socket_takes_it() -> None:
    socket = FakeSocket()
    connection = _connection(socket)
    connection.send("a")
    assert socket.sent == ["a"] and connection._writer is None


async def test_a_send_that_must_wait_is_finished_by_a_writer_that_then_goes_away() -> None:
    socket = FakeSocket(gated=True)
    connection = _connection(socket)
    connection.send("a")  # the client's window is full: this send waits
    connection.send("b")  # and this one queues behind it
    assert connection._writer is not None and socket.sent == []
    socket.gate.set()
    await asyncio.wait_for(_writer_gone(connection), 1)
    assert socket.sent == ["a", "b"] and not connection.ended.done()
    connection.send("c")
    assert socket.sent == ["a", "b", "c"] and connection._writer is None


async def test_a_client_gone_while_a_send_waits_ends_the_connection() -> None:
    # Starlette reports a client that went away during a send as WebSocketDisconnect (1006),
    # neither an OSError nor a RuntimeError: the writer ends the connection all the same.
    socket = FakeSocket(gated=True)
    connection = _connection(socket)
    connection.send("a")  # waits: the writer task finishes it
    connection.send("b")
    writer = connection._writer
    assert writer is not None

    async def gone(text: str) -> None:
        raise WebSocketDisconnect(code=1006)

    socket.send_text = gone  # type: ignore[method-assign]
    socket.gate.set()  # "a" is written; "b" meets the disconnect
    await ended(connection)
    await asyncio.wait_for(_writer_gone(connection), 1)
    assert writer.done() and writer.exception() is None  # nothing left unretrieved
    assert socket.sent == ["a"]
    connection.send("c")  # after the end: dropped, no writer
    assert connection._writer is None


class PrebuiltSocket(FakeSocket):
    """A socket whose server offers prebuilt frames; ``full`` is its write buffer's state."""

    def __init__(self) -> None:
        super().__init__(gated=True)
        self.full = False
        self.scope["extensions"][PREBUILT_FRAMES] = {"write": self.write_prebuilt}

    def write_prebuilt(self, wire: bytes) -> bool:
        if self.full:
            return False
        self.sent.append(text_of(wire))
        return True


def text_of(wire: bytes) -> str:
    """The text of one final, unmasked text frame, read as a client reads it."""
    assert wire[0] == 0x81 and not wire[1] & 0x80, wire[:2]
    length, at = wire[1] & 0x7F, 2
    if length == 126:
        length, at = int.from_bytes(wire[2:4]), 4
    elif length == 127:
        length, at = int.from_bytes(wire[2:10]), 10
    assert len(wire) == at + length
    return wire[at:].decode()


@pytest.mark.parametrize("size", [1, 125, 126, 65_535, 65_536, 300_000])
def test_an_outgoing_frame_is_one_whole_text_frame(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    assert text_of(OutgoingFrame(text).wire) == text


async def test_prebuilt_frames_go_straight_to_the_socket_built_once_for_all() -> None:
    sockets = [PrebuiltSocket() for _ in range(3)]
    connections = [_connection(socket) for socket in sockets]
    frame = OutgoingFrame('{"event":"mentor_status_update","data":{"x":"' + "é" * 200 + '"}}')
    for connection in connections:
        connection.send(frame)
        connection.send("own")
    assert all(socket.sent == [frame.text, "own"] for socket in sockets)
    assert frame.wire is frame.wire  # serialized once
    assert all(connection._writer is None for connection in connections)


async def test_a_full_socket_gets_its_prebuilt_frames_in_order_through_the_writer() -> None:
    socket = PrebuiltSocket()
    connection = _connection(socket)
    connection.send("a")
    socket.full = True  # the transport paused writing: the frame must wait, in order
    connection.send(OutgoingFrame("b"))
    connection.send("c")
    assert socket.sent == ["a"] and _queued(connection) == ["b", "c"]
    socket.full = False
    connection.send("d")  # queued behind b and c, not written past them
    socket.gate.set()
    await asyncio.wait_for(_writer_gone(connection), 1)
    assert socket.sent == ["a", "b", "c", "d"]


async def _writer_gone(connection: Connection) -> None:
    while connection._writer is not None:
        await asyncio.sleep(0)


async def test_a_client_that_does_not_read_is_dropped() -> None:
    socket = FakeSocket(stuck=True)
    connection = _connection(socket, limit=3, send_timeout_s=0.05)
    connection.send("a")
    await asyncio.wait_for(socket.sending.wait(), 1)  # the writer is stuck sending "a"
    for text in ("b", "c", "d"):
        connection.send(text)
    with pytest.raises(SlowConsumer):
        connection.send("e")
    connection.abort(1008)
    connection.send("ignored after abort")
    await ended(connection)  # the send timeout ends the writer: no hang
    assert socket.sent == []


async def test_abort_skips_queued_frames() -> None:
    socket = FakeSocket(gated=True)
    connection = _connection(socket)
    connection.send("a")  # waiting to be taken
    connection.send("b")  # queued
    connection.abort(1008)
    socket.gate.set()
    await ended(connection)
    assert socket.sent == ["a"] and socket.closed_with == 1008


async def test_finish_ends_after_the_queued_frames_or_at_once_when_none() -> None:
    socket = FakeSocket()
    connection = _connection(socket)
    connection.send("last words")
    connection.finish()
    connection.send("too late")
    await ended(connection)
    assert socket.sent == ["last words"] and socket.closed_with is None
    idle = _connection(FakeSocket())
    idle.finish()
    assert idle.ended.done()


async def test_a_stuck_client_does_not_hold_up_the_end() -> None:
    socket = FakeSocket(stuck=True)
    connection = _connection(socket)  # a 5 s send timeout
    connection.send("never taken")
    await asyncio.wait_for(socket.sending.wait(), 1)
    connection.finish()
    await asyncio.wait_for(connection.wait_ended(0.05), 1)
    assert connection.ended.done() and connection._writer is None


async def test_a_followup_is_sent_when_nothing_replaces_it() -> None:
    socket = FakeSocket()
    connection = _connection(socket, limit=10)
    connection.replace_followup("typing:c:alice", 0.01, "stopped")
    await asyncio.wait_for(socket.sending.wait(), 2)
    assert socket.sent == ["stopped"]


async def test_a_followup_replaced_or_cancelled_in_time_never_comes() -> None:
    connection = _connection(FakeSocket(), limit=10, writable=False)
    connection.replace_followup("typing:c:alice", 0.05, "first")
    connection.replace_followup("typing:c:alice", 0.05, "second")  # refreshed
    connection.replace_followup("typing:c:bob", 0.05, "other")
    connection.replace_followup("typing:c:bob", 0.0, None)  # stopped explicitly
    other = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.2, other.set_result, None)
    await other
    assert _queued(connection) == ["second"]


async def test_closing_a_connection_drops_its_followups() -> None:
    socket = FakeSocket()
    connection = _connection(socket, limit=10)
    connection.replace_followup("k", 0.01, "late")
    connection.finish()
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.1, done.set_result, None)
    await done
    assert socket.sent == [] and connection.ended.done()


async def test_nothing_is_written_before_the_connection_may_write() -> None:
    socket = FakeSocket()
    connection = _connection(socket, limit=10, writable=False)
    connection.send("connected")
    connection.send("an early push")
    await asyncio.wait({connection.ended}, timeout=0.05)
    assert socket.sent == [] and connection._writer is None
    connection.start_writing()
    connection.finish()
    await ended(connection)
    assert socket.sent == ["connected", "an early push"]


async def test_a_user_on_several_gateways_gets_a_share_of_the_budget_here() -> None:
    registry = Registry(user_rate_per_s=60.0, user_burst=120)
    registry.add(_connection(FakeSocket()))  # u1 is here
    limiter = registry.user_limiter("u1")
    assert (limiter.rate, limiter.capacity) == (60.0, 120)
    registry.spread_over("u1", 3)
    assert (limiter.rate, limiter.capacity) == (20.0, 40)
    assert sum(limiter.allow() for _ in range(100)) == 40, "what was above the share is gone"
    registry.spread_over("u1", 1)
    assert (limiter.rate, limiter.capacity) == (60.0, 120)
    registry.spread_over("nobody-here", 2)  # left meanwhile: nothing kept for them
    assert registry.user_limiter("nobody-here").rate == 60.0
