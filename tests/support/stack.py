"""Starts the real processes (gateway, services) of one isolated stack for a test.

Every stack gets its own namespace on the shared broker, its own data folder and ports, so
tests never see each other's queues or databases.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from shared.auth import issue_token
from tools.rabbit import free_port

REPO = Path(__file__).resolve().parents[2]
JWT_SECRET = "test-secret-0123456789abcdef-0123456789"
# For tests and benchmarks that send faster than a person could: no per-connection or per-user
# rate limit gets in the way.
NO_RATE_LIMITS = {
    "IM_RATE_LIMIT_PER_S": "1000000",
    "IM_RATE_LIMIT_BURST": "1000000",
    "IM_USER_RATE_LIMIT_PER_S": "1000000",
    "IM_USER_RATE_LIMIT_BURST": "1000000",
}
# A budget that hardly refills: 10 events per socket, 15 per user over all their sockets.
SMALL_RATE_BUDGET = {
    "IM_RATE_LIMIT_PER_S": "0.01",
    "IM_RATE_LIMIT_BURST": "10",
    "IM_USER_RATE_LIMIT_PER_S": "0.01",
    "IM_USER_RATE_LIMIT_BURST": "15",
}
READY_LINE = "consuming"


def merged(*settings: Mapping[str, str]) -> dict[str, str]:
    """Several groups of IM_* settings as one; a later group's value wins. What the start and
    spawn methods take: named groups first, then single settings as keywords, e.g.
    ``stack.start_gateway(NO_RATE_LIMITS, IM_REQUEST_TIMEOUT_S="1")``."""
    return {name: value for group in settings for name, value in group.items()}


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a socket listening on TCP ``port``."""
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


LOST_TASK_FAILURE = "Task exception was never retrieved"


async def poll(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """The asyncio twin of ``stack.wait_until``: poll ``condition`` until a deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout_s: float = 15.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


class LocalUrls:
    """The URLs of what listens on 127.0.0.1:``port`` (a gateway, or a load balancer)."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Gateway(LocalUrls):
    process: Process
    port: int


@dataclass
class Stack:
    amqp_url: str
    base_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    amqp_urls: tuple[str, ...] = ()  # the nodes of a cluster (IM_AMQP_URLS), when it is one
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    processes: list[Process] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IM_")}
        env.update(
            IM_AMQP_URL=self.amqp_url,
            IM_NAMESPACE=self.namespace,
            IM_DATA_DIR=str(self.base_dir / "data"),
            IM_JWT_SECRET=JWT_SECRET,
            IM_LOG_JSON="false",
            IM_LOG_LEVEL="INFO",
            IM_RECONNECT_GRACE_S="1",
            IM_GATEWAY_HEARTBEAT_S="0.5",
            IM_GATEWAY_TIMEOUT_S="2",
            PYTHONUNBUFFERED="1",
        )
        if self.amqp_urls:
            env["IM_AMQP_URLS"] = ",".join(self.amqp_urls)
        env.update(self.env_overrides)
        env.update(extra)
        return env

    def _spawn(self, name: str, module: str, env: dict[str, str]) -> Process:
        log_path = self.base_dir / f"{name}-{len(self.processes)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def start_service(
        self, name: str, *settings: Mapping[str, str], timeout_s: float = 30.0, **env: str
    ) -> Process:
        """Start ``python -m services.<name>`` with ``settings`` and ``env`` (IM_* settings;
        see :func:`merged`); return once it consumes its queue."""
        process = self.spawn_service(name, *settings, **env)
        self.wait_logged(process, READY_LINE, timeout_s)
        return process

    def spawn_service(self, name: str, *settings: Mapping[str, str], **env: str) -> Process:
        """Start ``python -m services.<name>`` and return at once (replicas starting together)."""
        return self._spawn(name, f"services.{name}", self.env(**merged(*settings, env)))

    @staticmethod
    def wait_logged(process: Process, line: str, timeout_s: float = 30.0) -> None:
        """Until ``process`` has logged ``line`` (fails if it exits first)."""
        wait_until(
            lambda: line in process.log() or not process.alive(),
            timeout_s,
            f"{process.name} to log {line!r}",
        )
        assert process.alive(), f"{process.name} exited:\n{process.log()}"

    def start_gateway(
        self,
        *settings: Mapping[str, str],
        timeout_s: float = 30.0,
        port: int | None = None,
        **env: str,
    ) -> Gateway:
        """Start a gateway; return once ``/readyz`` answers 200."""
        gateway = self.spawn_gateway(*settings, port=port, **env)
        self.wait_ready(gateway, timeout_s)
        return gateway

    def spawn_gateway(
        self, *settings: Mapping[str, str], port: int | None = None, **env: str
    ) -> Gateway:
        """Start a gateway process and return at once (see :meth:`wait_ready`)."""
        port = port or free_port()
        settings_env = merged(*settings, env)
        process = self._spawn(
            "gateway", "services.gateway", self.env(IM_GATEWAY_PORT=str(port), **settings_env)
        )
        return Gateway(process, port)

    def wait_ready(self, gateway: Gateway, timeout_s: float = 30.0) -> None:
        """Until the gateway process listens on its port and ``/readyz`` answers 200 (fails if
        the process exits). With a port shared by several gateways, another may answer."""
        process = gateway.process

        def ready() -> bool:
            if not process.alive():
                return True
            if not listens(process.popen.pid, gateway.port):
                return False
            try:
                return httpx.get(f"{gateway.http}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s, "gateway to be ready")
        assert process.alive(), f"gateway exited:\n{process.log()}"
        self.gateways.append(gateway)

    def token(self, user_id: str, role: str = "student", name: str | None = None) -> str:
        return issue_token(user_id, role, JWT_SECRET, name=name)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()

    @classmethod
    @contextmanager
    def running(
        cls, amqp_url: str, base_dir: Path, services: dict[str, dict[str, str]]
    ) -> Iterator[Stack]:
        """A stack with ``services`` (name → extra env) and one gateway, for a whole module."""
        stack = cls(amqp_url=amqp_url, base_dir=base_dir)
        try:
            for name, env in services.items():
                stack.start_service(name, env)
            stack.start_gateway()
            yield stack
        finally:
            stack.stop()

    def lost_task_failures(self) -> list[str]:
        """The logs in which a background task died of an exception nobody handled: asyncio
        reports it as "never retrieved", and it is always a bug (the failure went unseen)."""
        return [p.log_path.name for p in self.processes if LOST_TASK_FAILURE in p.log()]

    def print_logs(self, lines: int = 60) -> None:
        for process in self.processes:
            tail = process.log().splitlines()[-lines:]
            print(f"----- {process.log_path.name} (last {len(tail)} lines) -----")
            print("\n".join(tail))
