"""The system under test: a private RabbitMQ node and one stack (four services, and one gateway
or ``--gateways`` processes sharing its port), plus what the benchmark does to it: read memory
and CPU, restart the gateways on their port.

The stack is ``bench.openloop.systems.our_system`` (production timings, no rate limits) on a
node of our own, so the broker's memory is the stack's alone and ``rabbitmqctl`` can ask it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator, Mapping
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

    def gateways(self) -> list[Process]:
        """The gateway processes serving now (the newest)."""
        return self.system.serving_gateways()

    def gateway_rss_bytes(self) -> int:
        return sum(int(psutil.Process(g.popen.pid).memory_info().rss) for g in self.gateways())

    def gateway_sockets(self) -> int:
        """TCP sockets the gateways hold open to clients (established), for context."""
        port = self.gateway_port
        return sum(
            1
            for g in self.gateways()
            for c in psutil.Process(g.popen.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
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
        pids = self.system.processes()
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
        """SIGKILL (``hard``) or SIGTERM every gateway, then start as many on the same port."""
        old = self.gateways()
        signalled = now()
        stop = [asyncio.to_thread(g.kill if hard else g.terminate) for g in old]
        await asyncio.gather(*stop)
        exited = now()
        try:
            await asyncio.to_thread(
                self.system.start_gateways, self.gateway_port, RESTART_READY_TIMEOUT_S
            )
            ready: float | None = now()
        except AssertionError:  # not ready in time; the process (if alive) goes on serving
            ready = None
        return Restart(signalled, exited, ready, old[0].popen.returncode)


@contextmanager
def running(
    compression: bool,
    keep_dir: Path | None = None,
    gateways: int = 1,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Target]:
    """Broker, services and gateways for one run (with ``settings``, ``IM_`` names → values);
    logs under ``keep_dir`` if given."""
    with tempfile.TemporaryDirectory(prefix="im-connections-") as tmp:
        base = keep_dir or Path(tmp)
        rabbit = LocalRabbit(Path(tmp) / "rabbit")
        rabbit.start()
        try:
            with our_system(
                rabbit.url, base / "stack", compression, gateways, settings=settings
            ) as system:
                port = system.stack.gateways[-1].port
                broker = listener_of(rabbit.port)
                yield Target(rabbit, system, port, broker.pid if broker else None)
        finally:
            rabbit.stop()
