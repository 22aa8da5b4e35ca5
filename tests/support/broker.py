"""A real RabbitMQ for the tests: testcontainers' image where a Docker engine answers,
otherwise a private local ``rabbitmq-server`` node (installed with apt-get when missing)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tools.rabbit import LocalRabbit, free_port, port_open
from tools.rabbit_cluster import LocalCluster

RABBIT_IMAGE = "rabbitmq:3.13-management"


class Broker(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...

    def restart(self) -> None: ...


def docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class ContainerBroker:
    """RabbitMQ in a container, published on a fixed host port so a restart keeps the URL."""

    container: object
    url: str

    def _wrapped(self) -> Any:
        return self.container.get_wrapped_container()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._wrapped().stop(timeout=30)

    def start(self) -> None:
        self._wrapped().start()
        _wait_for_port(int(self.url.rsplit(":", 1)[1].rstrip("/")))

    def restart(self) -> None:
        self.stop()
        self.start()


def _wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"broker port {port} did not open")
        time.sleep(0.1)


@contextmanager
def running_broker() -> Iterator[Broker]:
    """A fresh broker for as long as the context lasts."""
    if docker_engine_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        port = free_port()
        container = RabbitMqContainer(RABBIT_IMAGE).with_bind_ports(5672, port)
        with container:
            yield ContainerBroker(container, f"amqp://guest:guest@127.0.0.1:{port}/")
        return
    with _started_in_temp_dir("im-rabbit-", LocalRabbit) as node:
        yield node


@contextmanager
def running_cluster(size: int = 3) -> Iterator[LocalCluster]:
    """A fresh cluster of ``size`` local nodes (always local: a test kills nodes by pid)."""
    with _started_in_temp_dir("im-cluster-", lambda base: LocalCluster(base, size)) as cluster:
        yield cluster


@contextmanager
def running_local_node() -> Iterator[LocalRabbit]:
    """A fresh local node, never a container (a test pauses it by pid)."""
    with _started_in_temp_dir("im-node-", LocalRabbit) as node:
        yield node


class _Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


Local = TypeVar("Local", bound=_Startable)


@contextmanager
def _started_in_temp_dir(prefix: str, make: Callable[[Path], Local]) -> Iterator[Local]:
    """What ``make`` builds in a fresh temporary folder, started; stopped and the folder
    removed when the context ends."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    local = make(base)
    local.start()
    try:
        yield local
    finally:
        local.stop()
        shutil.rmtree(base, ignore_errors=True)
