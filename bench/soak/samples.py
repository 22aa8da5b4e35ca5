"""Memory of the stack between rounds: the RSS, open files and CPU seconds of each process
(gateway, services, the broker's beam.smp) read with psutil, and the size of chat's SQLite
database and its write-ahead log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.openloop.cpu import tree_seconds

MIB = 1024 * 1024
# the order of the columns; a label not here (a replica, ``gateway-2``) comes after
ORDER = ("gateway", "presence", "chat", "calls", "help", "broker")


@dataclass
class Sample:
    round: int  # rounds done when it was taken
    connections: int  # cumulative connections made
    messages: int  # cumulative messages sent (acked)
    delivered: int  # cumulative messages delivered
    elapsed_s: float  # since the first round started
    rss_mib: dict[str, float | None]  # label → RSS; None: the process is gone
    fds: dict[str, int | None] = field(default_factory=dict)  # open file descriptors
    cpu_s: dict[str, float | None] = field(default_factory=dict)  # user + system, cumulative
    wal_mib: float = 0.0  # chat.db-wal (0 when there is none)
    db_mib: float = 0.0  # chat.db


def ordered(labels: list[str]) -> list[str]:
    def rank(label: str) -> tuple[int, str]:
        base = label.split("-")[0]
        return (ORDER.index(base) if base in ORDER else len(ORDER), label)

    return sorted(labels, key=rank)


def file_mib(path: Path) -> float:
    try:
        return path.stat().st_size / MIB
    except FileNotFoundError:
        return 0.0


class Sampler:
    """Reads ``processes`` (label → pid) and the chat database under ``data_dir``."""

    def __init__(self, processes: dict[str, int], data_dir: Path) -> None:
        self.processes = {label: psutil.Process(pid) for label, pid in processes.items()}
        self.labels = ordered(list(processes))
        self.db = data_dir / "chat.db"
        self.wal = data_dir / "chat.db-wal"

    def gone(self) -> list[str]:
        """The labels of processes that are no longer running."""
        return [label for label, p in self.processes.items() if not _running(p)]

    def take(
        self, round_no: int, connections: int, messages: int, delivered: int, elapsed_s: float
    ) -> Sample:
        sample = Sample(round_no, connections, messages, delivered, elapsed_s, rss_mib={})
        for label in self.labels:
            process = self.processes[label]
            try:
                with process.oneshot():
                    sample.rss_mib[label] = process.memory_info().rss / MIB
                    sample.fds[label] = process.num_fds()
            except psutil.Error:
                sample.rss_mib[label] = None
                sample.fds[label] = None
            sample.cpu_s[label] = tree_seconds(process) if _running(process) else None
        sample.wal_mib = file_mib(self.wal)
        sample.db_mib = file_mib(self.db)
        return sample


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
