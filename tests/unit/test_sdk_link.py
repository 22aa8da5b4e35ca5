"""The SDK's connection state (no network): one ConnectionState for the client's whole life,
and what a request waiting for a connection gets in each."""

from __future__ import annotations

import asyncio

import pytest
from instantmentor_client import AuthenticationFailed, ClientClosed, NotConnected
from instantmentor_client._link import ConnectionState, Link
from instantmentor_client.models import Session

SESSION = Session.from_dict(
    {
        "user_id": "u",
        "role": "student",
        "name": "U",
        "connection_id": "c",
        "server_time": "2026-12-02T00:00:00Z",
        "heartbeat_interval_s": 20,
        "protocol_version": 1,
    }
)


async def test_a_life_from_idle_to_closed() -> None:
    link = Link()
    assert (link.state, link.up) == (ConnectionState.IDLE, False)
    link.connected(object(), SESSION)
    assert (link.state, link.generation, link.up) == (ConnectionState.CONNECTED, 1, True)
    link.lost()
    assert (link.state, link.up) == (ConnectionState.RECONNECTING, False)
    link.connected(object(), SESSION)
    assert (link.state, link.generation) == (ConnectionState.CONNECTED, 2)
    link.closing()
    link.lost()  # the socket closing under close() does not make it reconnect
    assert (link.state, link.ending) == (ConnectionState.CLOSING, True)
    link.closed()
    assert link.state is ConnectionState.CLOSED and isinstance(link.fatal, ClientClosed)


async def test_the_first_reason_for_the_end_is_kept() -> None:
    link = Link()
    link.closed(AuthenticationFailed("token refused"))
    link.closed()
    error = link.closed_error("send_message")
    assert isinstance(error, AuthenticationFailed) and error.event == "send_message"


async def test_a_request_waits_for_the_next_connection_not_the_one_it_lost() -> None:
    link = Link()
    first, second = object(), object()
    link.connected(first, SESSION)
    deadline = asyncio.get_running_loop().time() + 5
    assert await link.wait_connected(deadline, "ping") == (first, 1)
    link.lost()
    waiting = asyncio.create_task(link.wait_connected(deadline, "ping", stale=1))
    done, _ = await asyncio.wait({waiting}, timeout=0.05)
    assert not done, "no connection to send on: it waits"
    link.connected(second, SESSION)
    assert await waiting == (second, 2)


async def test_before_connect_and_after_the_end_requests_fail_at_once() -> None:
    link = Link()
    deadline = asyncio.get_running_loop().time() + 5
    with pytest.raises(NotConnected):
        await link.wait_connected(deadline, "ping")
    link.closed()
    with pytest.raises(ClientClosed):
        await link.wait_connected(deadline, "ping")


async def test_while_reconnecting_a_request_gives_up_at_its_deadline() -> None:
    link = Link()
    link.connected(object(), SESSION)
    link.lost()
    with pytest.raises(NotConnected):
        await link.wait_connected(asyncio.get_running_loop().time() + 0.05, "ping")
