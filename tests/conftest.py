"""Fixtures: one real broker for the session, one isolated stack per test."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker, running_broker
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with running_broker() as running:
        yield running


@pytest.fixture
async def stack(broker: Broker, tmp_path: Path) -> AsyncIterator[Stack]:
    """An empty stack on the shared broker; a test starts the processes it needs."""
    running = Stack(amqp_url=broker.url, base_dir=tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone (for tests that restart it)."""
    with running_broker() as running:
        yield running
    shutil.rmtree(tmp_path / "rabbit", ignore_errors=True)
