"""CPU seconds (user + system) of each process of a system, read with psutil.

Each watched process counts with all its descendants (and the children it already reaped),
so a server that forks helpers is charged for them. The broker is found by the port it
listens on, whoever started it.
"""

from __future__ import annotations

import asyncio
import time

import psutil

QUIET_WINDOW_S = 0.5


def _own_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def tree_seconds(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and every live descendant; 0 once it is gone."""
    total = 0.0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return total
    for member in members:
        try:
            total += _own_seconds(member)
        except psutil.Error:
            pass  # exited between listing and reading: its time went to its parent
    return total


def listener_of(port: int) -> psutil.Process | None:
    """The process listening on TCP ``port`` (the broker's beam.smp for the AMQP port)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return psutil.Process(conn.pid) if conn.pid else None
    return None


class CpuMeter:
    """Cumulative CPU seconds per label; ``delta`` between two samples is a step's cost."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = {label: psutil.Process(pid) for label, pid in processes.items()}

    def sample(self) -> dict[str, float]:
        return {label: tree_seconds(p) for label, p in self.processes.items()}

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {label: after[label] - before[label] for label in before}

    def names(self) -> dict[str, str]:
        """label → executable name, for the report (e.g. broker → beam.smp)."""
        out = {}
        for label, process in self.processes.items():
            try:
                out[label] = process.name()
            except psutil.Error:
                out[label] = "?"
        return out

    async def wait_quiet(self, max_cores: float, timeout_s: float) -> tuple[float, bool]:
        """Wait until the watched processes together use under ``max_cores`` over a window
        (earlier work is done); return the seconds waited and whether it got quiet."""
        start = time.perf_counter()
        before = sum(self.sample().values())
        while time.perf_counter() - start < timeout_s:
            await asyncio.sleep(QUIET_WINDOW_S)
            after = sum(self.sample().values())
            if (after - before) / QUIET_WINDOW_S < max_cores:
                return time.perf_counter() - start, True
            before = after
        return time.perf_counter() - start, False


class SelfMeter:
    """The load generator's own CPU (this process only, not the servers it started)."""

    def __init__(self) -> None:
        self._process = psutil.Process()

    def sample(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system
