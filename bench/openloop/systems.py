"""Starting and stopping the two systems under test, and naming their processes.

* ours: the gateway and every service (presence, chat, calls, help) of one stack, from
  ``tests.support.stack``, in production settings except the per-connection rate limit.
* the peer: two ``bench.openloop.peer_server`` processes sharing one RabbitMQ exchange;
  ``peer-durable``: the same with each server's queue a durable quorum queue.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.protocol.registry import SERVICES
from tests.support.stack import NO_RATE_LIMITS, REPO, Process, Stack
from tools.rabbit import free_port, port_open

# The default limit (30/s per connection) would refuse an open-loop sender at once; and the
# receivers send no delivery receipts, so a pair's conversation would reach the backlog cap.
UNLIMITED = {**NO_RATE_LIMITS, "IM_MAX_UNDELIVERED_PER_CONVERSATION": "1000000"}
# Stack's test values (0.5 s beats, a gateway presumed dead after 2 s, 1 s grace) would let an
# overloaded step look like a dead gateway; the production defaults do not.
PRODUCTION_TIMINGS = {
    "IM_GATEWAY_HEARTBEAT_S": "5",
    "IM_GATEWAY_TIMEOUT_S": "15",
    "IM_RECONNECT_GRACE_S": "10",
    "IM_LOG_JSON": "true",
}
START_TIMEOUT_S = 30.0


@dataclass
class OurSystem:
    stack: Stack
    ws_url: str
    gateways: int = 1  # gateway processes sharing the port (SO_REUSEPORT) when more than one

    def processes(self) -> dict[str, int]:
        """label → pid; a service with replicas as ``chat-1``, ``chat-2`` …; the newest
        ``gateways`` gateway processes, as ``gateway`` when there is one and ``gateway-1`` …
        otherwise."""
        services = [p for p in self.stack.processes if p.name != "gateway"]
        pids: dict[str, int] = {}
        for process in services:
            same = [p for p in services if p.name == process.name]
            number = next(i for i, p in enumerate(same, start=1) if p is process)
            pids[process.name if len(same) == 1 else f"{process.name}-{number}"] = process.popen.pid
        serving = self.serving_gateways()
        for number, process in enumerate(serving, start=1):
            pids["gateway" if len(serving) == 1 else f"gateway-{number}"] = process.popen.pid
        return pids

    def serving_gateways(self) -> list[Process]:
        """The gateway processes started last (the ones serving now)."""
        return [p for p in self.stack.processes if p.name == "gateway"][-self.gateways :]

    def start_gateways(self, port: int | None = None, timeout_s: float = START_TIMEOUT_S) -> int:
        """Start ``gateways`` gateway processes on one port, all at once (the first would
        otherwise take every waiting client alone); return the port once all are ready."""
        shared = {"IM_GATEWAY_REUSE_PORT": "true"} if self.gateways > 1 else {}
        port = port or free_port()
        started = [self.stack.spawn_gateway(shared, port=port) for _ in range(self.gateways)]
        for gateway in started:
            self.stack.wait_ready(gateway, timeout_s)
        return port

    def token(self, user_id: str, role: str = "student") -> str:
        return self.stack.token(user_id, role, name=user_id)


@dataclass
class PeerSystem:
    sender_url: str  # senders (and the mentor) connect here
    receiver_url: str  # receivers (and the students) connect here
    servers: list[Process]
    durable: bool = False  # each server's queue a durable quorum queue

    @property
    def name(self) -> str:
        """The label of its results."""
        return "peer-durable" if self.durable else "peer"

    def processes(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self.servers}


@contextmanager
def our_system(
    amqp_url: str,
    base_dir: Path,
    deflate: bool,
    gateways: int = 1,
    replicas: Mapping[str, int] | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[OurSystem]:
    """Every service (``replicas[name]`` processes of it, default one) and ``gateways``
    gateway processes sharing one port."""
    base_dir.mkdir(parents=True, exist_ok=True)
    compression = {"IM_WS_COMPRESSION": "true" if deflate else "false"}
    stack = Stack(
        amqp_url=amqp_url,
        base_dir=base_dir,
        env_overrides={**UNLIMITED, **PRODUCTION_TIMINGS, **compression, **(settings or {})},
    )
    try:
        for service in SERVICES:
            count = (replicas or {}).get(service, 1)
            for index in range(count):  # each its own share of chat's partitions
                env = {"IM_REPLICAS": str(count), "IM_REPLICA_INDEX": str(index)}
                stack.start_service(service, timeout_s=START_TIMEOUT_S, **env)
        system = OurSystem(stack, "", gateways)
        system.ws_url = f"ws://127.0.0.1:{system.start_gateways()}/ws"
        yield system
    finally:
        stack.stop()


def _start_peer_server(
    name: str, amqp_url: str, channel: str, base_dir: Path, deflate: bool, durable: bool
) -> tuple[Process, int]:
    port = free_port()
    log_path = base_dir / f"{name}.log"
    command = [sys.executable, "-m", "bench.openloop.peer_server", "--port", str(port)]
    command += ["--amqp-url", amqp_url, "--channel", channel]
    command += ["--deflate"] if deflate else []
    command += ["--durable"] if durable else []
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Process(name, popen, log_path), port


def _wait_listening(server: Process, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if not server.alive():
            raise RuntimeError(f"{server.name} exited:\n{server.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not listen on {port}:\n{server.log()}")
        time.sleep(0.05)


@contextmanager
def peer_system(
    amqp_url: str, base_dir: Path, deflate: bool, durable: bool = False
) -> Iterator[PeerSystem]:
    base_dir.mkdir(parents=True, exist_ok=True)
    channel = f"openloop-{uuid.uuid4().hex[:10]}"
    servers: list[Process] = []
    try:
        ports = []
        for name in ("peer-a", "peer-b"):
            server, port = _start_peer_server(name, amqp_url, channel, base_dir, deflate, durable)
            servers.append(server)
            ports.append(port)
        for server, port in zip(servers, ports, strict=True):
            _wait_listening(server, port)
        sender_url, receiver_url = (f"http://127.0.0.1:{port}" for port in ports)
        yield PeerSystem(sender_url, receiver_url, servers, durable)
    finally:
        for server in servers:
            server.terminate()
