"""A private cluster of local RabbitMQ nodes (three by default), for development and tests on
machines without a Docker engine: each node is a :class:`LocalRabbit` with its own name, ports
and folders; they share one Erlang cookie and are joined with ``rabbitmqctl join_cluster``.
Every node is stopped (or killed) by the pid it was started with, never by name."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.rabbit import LocalRabbit, RabbitUnavailable, free_port

QUEUES = "/usr/lib/rabbitmq/bin/rabbitmq-queues"


@dataclass
class LocalCluster:
    """``size`` nodes under ``base``; ``start()`` returns once all of them run as one cluster."""

    base: Path
    size: int = 3
    nodes: list[LocalRabbit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base = self.base.resolve()
        promised: list[int] = []
        for i in range(self.size):
            port = free_port(avoid=tuple(promised))
            dist_port = free_port(avoid=(*promised, port))
            promised += [port, dist_port]
            node_base = self.base / f"node{i + 1}"
            self.nodes.append(
                LocalRabbit(node_base, port=port, dist_port=dist_port, home=self.base / "home")
            )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, timeout_s: float = 120.0) -> None:
        """Boot every node at once, then join the others to the first one."""
        try:
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_open(timeout_s)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                for args in (("stop_app",), ("join_cluster", first.name), ("start_app",)):
                    self._ctl(node, *args)
                node.wait_open(timeout_s)
            self.wait_members(len(self.nodes), timeout_s)
        except BaseException:
            self.stop()
            raise

    def running_nodes(self) -> list[LocalRabbit]:
        return [node for node in self.nodes if node.running]

    def wait_members(self, count: int, timeout_s: float = 60.0) -> None:
        """Until a live node counts ``count`` running members in its cluster."""
        deadline = time.monotonic() + timeout_s
        while True:
            node = self.running_nodes()[0]
            status = node.ctl("eval", "length(rabbit_nodes:all_running()).")
            if status.returncode == 0 and status.stdout.strip() == str(count):
                return
            if time.monotonic() > deadline:
                raise RabbitUnavailable(f"cluster did not reach {count} running nodes: {status}")
            time.sleep(0.2)

    def quorum_members(self, queue: str) -> dict[str, str]:
        """Raft state (``leader``, ``follower``, …) of each member of quorum ``queue``, by node
        name, as a live node reports it (``rabbitmq-queues quorum_status``)."""
        node = self.running_nodes()[0]
        result = node.run(QUEUES, "-n", node.name, "quorum_status", queue, "--formatter", "json")
        if result.returncode != 0:
            raise RabbitUnavailable(f"quorum_status {queue} failed: {result.stderr}")
        return {member["Node Name"]: member["Raft State"] for member in json.loads(result.stdout)}

    def leader_of(self, queue: str) -> LocalRabbit:
        """The node that leads quorum ``queue`` now."""
        leaders = [name for name, state in self.quorum_members(queue).items() if state == "leader"]
        if len(leaders) != 1:
            raise RabbitUnavailable(f"{queue} has no single leader: {leaders}")
        return next(node for node in self.nodes if node.name == leaders[0])

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    @staticmethod
    def _ctl(node: LocalRabbit, *args: str) -> None:
        result = node.ctl(*args)
        if result.returncode != 0:
            raise RabbitUnavailable(f"rabbitmqctl {' '.join(args)} on {node.name}: {result.stderr}")
