"""The system under test: a private RabbitMQ node and one stack (four services, one gateway),
plus what the benchmark does to it: read memory and CPU, restart the gateway on its port.

The stack is ``bench.openloop.systems.our_system`` (production timings, no rate limits) on a
node of our own, so the broker's memory is the stack's alone and ``rabbitmqctl`` can ask it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.connections.client import now
from bench.openloop.cpu import listener_of, tree_seconds
from bench.openloop.systems import OurSystem, our_system
from tests.support.stack import Process
from tools.rabbit import LocalRabbit

RESTART_READY_TIMEOUT_S = 60.0  # /readyz competes with N reconnecting clients


@dataclass
class Restart:
    signalled: float  # SIGKILL or SIGTERM sent
    exited: float  # the old process was gone
    ready: float | None  # the new one answered /readyz (None: not within the timeout)
    exit_code: int | None


@dataclass
class Target:
    rabbit: LocalRabbit
    system: OurSystem
    gateway_port: int
    broker_pid: int | None  # beam.smp, found by its AMQP port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    def gateway(self) -> Process:
        """The newest gateway process (the one serving now)."""
        return [p for p in self.system.stack.processes if p.name == "gateway"][-1]

    def gateway_rss_bytes(self) -> int:
        return int(psutil.Process(self.gateway().popen.pid).memory_info().rss)

    def gateway_sockets(self) -> int:
        """TCP sockets the gateway holds open to clients (established), for context."""
        connections = psutil.Process(self.gateway().popen.pid).net_connections(kind="tcp")
        port = self.gateway_port
        return sum(
            1 for c in connections if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )

    def broker_memory_bytes(self) -> dict[str, int]:
        """``rabbitmqctl status``: memory the Erlang VM allocated, and the OS's RSS of it."""
        result = self.rabbit.ctl("status", "--formatter", "json")
        if result.returncode != 0:
            return {}
        total = json.loads(result.stdout).get("memory", {}).get("total", {})
        return {kind: int(value) for kind, value in total.items()}

    def processes(self) -> dict[str, int]:
        """label → pid: gateway (the newest), each service, the broker."""
        pids = self.system.processes()  # later processes of a name win: the newest gateway
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        return pids

    def cpu_seconds(self) -> dict[str, float]:
        """label → CPU seconds of the process and its children (a gone process: left out)."""
        out = {}
        for label, pid in self.processes().items():
            try:
                out[label] = tree_seconds(psutil.Process(pid))
            except psutil.Error:
                pass
        return out

    async def restart_gateway(self, hard: bool) -> Restart:
        """SIGKILL (``hard``) or SIGTERM the gateway, then start a new one on the same port."""
        old = self.gateway()
        signalled = now()
        await asyncio.to_thread(old.kill if hard else old.terminate)
        exited = now()
        stack = self.system.stack
        try:
            await asyncio.to_thread(stack.start_gateway, RESTART_READY_TIMEOUT_S, self.gateway_port)
            ready: float | None = now()
        except AssertionError:  # not ready in time; the process (if alive) goes on serving
            ready = None
        return Restart(signalled, exited, ready, old.popen.returncode)


@contextmanager
def running(compression: bool, keep_dir: Path | None = None) -> Iterator[Target]:
    """Broker, services and gateway for one run; logs under ``keep_dir`` if given."""
    with tempfile.TemporaryDirectory(prefix="im-connections-") as tmp:
        base = keep_dir or Path(tmp)
        rabbit = LocalRabbit(Path(tmp) / "rabbit")
        rabbit.start()
        try:
            with our_system(rabbit.url, base / "stack", compression) as system:
                port = system.stack.gateways[-1].port
                broker = listener_of(rabbit.port)
                yield Target(rabbit, system, port, broker.pid if broker else None)
        finally:
            rabbit.stop()
