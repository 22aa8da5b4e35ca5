"""Fixtures: one real broker for the session, one isolated stack per test."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _pytest.nodes import Item
from _pytest.reports import TestReport
from _pytest.runner import CallInfo

from tests.support.broker import Broker, running_broker
from tests.support.client import protocol_violations
from tests.support.postgres import Databases, PostgresServer, running_postgres
from tests.support.stack import Stack

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[Item]) -> None:
    """Every test under tests/integration/ needs a real broker: ``-m "not integration"``
    leaves them all out, whichever file forgot a marker."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with running_broker() as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, started by the first test that needs it."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """The test's databases, once on SQLite files and once on PostgreSQL."""
    if request.param == "sqlite":
        yield Databases("sqlite", tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield Databases("postgresql", tmp_path, server)
    server.drop_databases()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: Item, call: CallInfo[None]
) -> Generator[None, TestReport, TestReport]:
    report: TestReport = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def stack(
    broker: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """An empty stack on the shared broker; a test starts the processes it needs.
    When the test fails, the tail of every process's log is printed with the failure.
    A test that asks for ``databases`` too runs its services on those (SQLite, PostgreSQL)."""
    running = Stack(amqp_url=broker.url, base_dir=tmp_path)
    if "databases" in request.fixturenames:
        databases: Databases = request.getfixturevalue("databases")
        running.env_overrides.update(databases.service_env())
    with stopped_after_the_test(running, request):
        yield running


@contextmanager
def stopped_after_the_test(running: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Stops ``running`` when the test is done; when it failed, prints every log's tail. A
    test that passed fails after all when a process lost a task's failure."""
    try:
        yield running
    finally:
        running.stop()
        lost = running.lost_task_failures()
        if lost or request.node.stash.get(FAILED, False):
            running.print_logs()
    if lost:
        raise AssertionError(f"a background task failed unseen, in {', '.join(lost)}")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone (for tests that restart it)."""
    with running_broker() as running:
        yield running
    shutil.rmtree(tmp_path / "rabbit", ignore_errors=True)


@pytest.fixture(autouse=True)
async def report_hung_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Shortly before pytest-timeout fails a test, print where each asyncio task waits."""
    limit = float(request.config.getini("timeout") or 0)
    if limit <= 0:
        yield
        return
    loop = asyncio.get_running_loop()

    def dump() -> None:
        if loop.is_running():
            loop.call_soon_threadsafe(_print_tasks, loop)

    timer = threading.Timer(max(1.0, limit - 20), dump)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    print("----- asyncio tasks of a test about to time out -----", file=sys.stderr)
    for task in asyncio.all_tasks(loop):
        task.print_stack(file=sys.stderr)


@pytest.fixture(autouse=True)
def frames_follow_the_protocol() -> Iterator[None]:
    """Every frame a test client received matched its schema (registry.SERVER_PUSHES)."""
    protocol_violations.clear()
    yield
    assert not protocol_violations, "\n".join(protocol_violations[:10])
