"""``make up`` on a fresh machine: its broker path with a default-shaped configuration.

The default is AMQP on 5672 with the management UI on 15672 (AMQP + 10000). A node whose
Erlang distribution port was derived as AMQP + 10000 collided with the management port and
exited with ``eaddrinuse``; this runs the same path on free ports of the same shape."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import get_settings
from tools.rabbit import free_port, port_open
from tools.up import Stack


def _default_shaped_port() -> int:
    """A free AMQP port P whose P + 10000 (where the management UI goes) is free too."""
    while True:
        port = free_port()
        if port + 10_000 <= 65_535 and not port_open(port + 10_000):
            return port


@pytest.fixture
def up_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    port = _default_shaped_port()
    monkeypatch.setenv("IM_AMQP_URL", f"amqp://guest:guest@localhost:{port}/")
    monkeypatch.setenv("IM_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    stack = Stack()
    try:
        yield stack
    finally:
        stack.stop()
        get_settings.cache_clear()


def test_make_up_starts_its_own_broker_with_the_default_port_layout(up_stack: Stack) -> None:
    amqp_port = int(os.environ["IM_AMQP_URL"].rsplit(":", 1)[1].rstrip("/"))

    up_stack.provide_broker()

    node = up_stack.rabbit
    assert node is not None, "no broker answered, so make up must start its own node"
    assert node.port == amqp_port
    assert node.management_port == amqp_port + 10_000
    assert len({node.port, node.management_port, node.dist_port}) == 3
    assert port_open(amqp_port), "the node accepts AMQP on the configured port"
    overview = httpx.get(f"http://127.0.0.1:{node.management_port}/api/overview", timeout=5)
    assert overview.status_code == 401, "the management UI answers on its own port"
    status = node.ctl("status")
    assert status.returncode == 0, status.stderr
    # every file the machine allows: with a soft limit of 1,024 the node's file handle cache
    # ran out after a few hundred queues, and new connections then hung
    handles = node.ctl("eval", "file_handle_cache:get_limit().")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert int(handles.stdout.strip()) > min(hard, 4096) - 200, handles
