"""The gateway's reading of Engine.IO requests matches python-engineio's ASGI driver's, and
leaves no reference cycle per request (services/gateway/engineio_server.py)."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from engineio.async_drivers import asgi as engineio_asgi

from services.gateway.engineio_server import RequestBody, translate_request

Events = list[dict[str, Any]]
HEADERS = [
    (b"host", b"example.test"),
    (b"content-type", b"text/plain;charset=UTF-8"),
    (b"content-length", b"11"),
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"X-Forwarded-For", b"10.0.0.2"),  # repeated: joined with a comma
    (b"x-bad", b"\xff\xfe"),  # not UTF-8: left out
    (b"x-forwarded-proto", b"https"),
]
SCOPES: dict[str, dict[str, Any]] = {
    "websocket": {
        "type": "websocket",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=websocket",
        "headers": HEADERS,
    },
    "poll": {
        "type": "http",
        "method": "POST",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=polling&sid=abc",
        "headers": HEADERS,
    },
    "no query": {"type": "http", "method": "GET", "path": "/socket.io/", "headers": []},
    "query not UTF-8": {
        "type": "http",
        "path": "/socket.io/",
        "query_string": b"sid=\xff",
        "headers": [],
    },
}
CONNECT: Events = [{"type": "websocket.connect"}]
BODY: Events = [
    {"type": "http.request", "body": b"hello ", "more_body": True},
    {"type": "http.request", "body": b"world", "more_body": False},
]


def receiving(events: Events) -> Callable[[], Awaitable[dict[str, Any]]]:
    remaining = list(events)

    async def receive() -> dict[str, Any]:
        return remaining.pop(0) if remaining else {"type": "http.disconnect"}

    return receive


async def send(message: Any) -> None:
    pass


async def environs(scope: dict[str, Any], events: Events) -> tuple[dict[str, Any], Any]:
    ours = await translate_request(scope, receiving(events), send)
    theirs = await engineio_asgi.translate_request(scope, receiving(events), send)
    return ours, theirs


def _comparable(environ: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in environ.items()
        if key not in ("wsgi.input", "asgi.receive", "asgi.send")
    }


@pytest.mark.parametrize("name", sorted(SCOPES))
async def test_the_environ_is_python_engineio_s(name: str) -> None:
    events = CONNECT if SCOPES[name]["type"] == "websocket" else BODY
    ours, theirs = await environs(SCOPES[name], events)
    assert _comparable(ours) == _comparable(theirs)
    assert isinstance(ours["wsgi.input"], RequestBody)


async def test_an_event_that_is_no_request_gives_no_environ() -> None:
    ours, theirs = await environs(SCOPES["poll"], [{"type": "lifespan.startup"}])
    assert ours == theirs == {}


@pytest.mark.parametrize("lengths", [[None, None], [4, 4, 100, None], [20], [6, None]])
async def test_the_body_reads_as_python_engineio_s(lengths: list[int | None]) -> None:
    ours, theirs = await environs(SCOPES["poll"], BODY)
    read_ours = [await ours["wsgi.input"].read(n) for n in lengths]
    read_theirs = [await theirs["wsgi.input"].read(n) for n in lengths]
    assert read_ours == read_theirs
    assert b"".join(r for r in read_ours if r) in (b"hello world", b"hello ")


async def test_requests_leave_no_reference_cycles() -> None:
    requests = 200
    gc.collect()
    gc.disable()
    try:
        for _ in range(requests):
            environ = await translate_request(SCOPES["poll"], receiving(BODY), send)
            assert await environ["wsgi.input"].read() == b"hello world"
        del environ
        left_in_cycles = gc.collect()
    finally:
        gc.enable()
    # python-engineio's driver left 15 objects in cycles per request (its class); nothing
    # here yields to the loop, so nothing else can have made garbage meanwhile
    assert left_in_cycles == 0
