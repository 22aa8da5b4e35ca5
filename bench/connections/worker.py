"""A load-generator process: one uvloop running its share of the students.

The parent talks to it over a pipe, one command at a time; every reply carries this
process's CPU seconds so far, so a run shows whether the generator itself was saturated.

    ("storm", url, start_at, ramp_s)                  → sessions of the first connect
    ("updates", tags, until)                          → arrival time per (tag, student)
    ("reconnected", since, until)                     → the session after ``since`` per student
    ("cpu",)                                          → nothing but the CPU seconds
    ("stop",)                                         → close every socket, then exit
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from bench.connections.client import Session, Student, now

POLL_S = 0.05


def raise_file_limit() -> None:
    """As many open files as the hard limit allows (every socket is one)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    def __init__(
        self, tokens: list[tuple[str, str]], index: int, workers: int, compression: bool
    ) -> None:
        self.tokens = tokens  # (user_id, token): every ``workers``-th student from ``index``
        self.index = index
        self.workers = workers
        self.compression = compression
        self.students: list[Student] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def storm(self, url: str, start_at: float, ramp_s: float) -> list[dict[str, Any]]:
        """Start every student at its slot of the ramp; wait for each first session."""
        for i, (user_id, token) in enumerate(self.tokens):
            student = Student(user_id, f"{url}?token={token}", self.compression)
            overall = i * self.workers + self.index  # the student's place in the whole ramp
            slot = start_at + ramp_s * overall / (len(self.tokens) * self.workers)
            self.students.append(student)
            self.tasks.append(asyncio.create_task(student.live(slot)))
        while not all(s.sessions and s.sessions[0].done for s in self.students):
            await asyncio.sleep(POLL_S)
        return [asdict(s.sessions[0]) for s in self.students]

    async def updates(self, tags: list[str], until: float) -> dict[str, list[float | None]]:
        """Per tag, when each student that is up had it (None: not by ``until``)."""
        watched = [s for s in self.students if s.up]
        while now() < until and not all(t in s.updates for s in watched for t in tags):
            await asyncio.sleep(POLL_S)
        return {tag: [s.updates.get(tag) for s in watched] for tag in tags}

    async def reconnected(self, since: float, until: float) -> list[dict[str, Any] | None]:
        """Per student that was up at ``since``: its sessions begun after it, once the latest
        is done (asked once the old gateway is gone, so the latest is on the new one).
        None: it never saw a drop by ``until``."""
        watched = [s for s in self.students if _up_at(s, since)]

        def after(student: Student) -> list[Session]:
            return [x for x in student.sessions if x.started >= since]

        def settled() -> bool:
            return all((x := after(s)) and x[-1].done for s in watched)

        while now() < until and not settled():
            await asyncio.sleep(POLL_S)
        out: list[dict[str, Any] | None] = []
        for student in watched:
            sessions = after(student)
            out.append({"sessions": [asdict(x) for x in sessions]} if sessions else None)
        return out

    async def stop(self) -> dict[str, Any]:
        await asyncio.gather(*(s.stop() for s in self.students), return_exceptions=True)
        await asyncio.wait(self.tasks, timeout=10) if self.tasks else None
        drops: dict[str, int] = {}
        for student in self.students:
            for code in student.drops:
                drops[code] = drops.get(code, 0) + 1
        return {"drops": drops}


def _up_at(student: Student, moment: float) -> bool:
    """Its latest session begun before ``moment`` had its snapshot by then."""
    before = [x for x in student.sessions if x.started < moment]
    return bool(before) and before[-1].snapshot is not None and before[-1].snapshot <= moment


async def serve(pipe: Connection, worker: Worker) -> None:
    while True:
        command, *args = await asyncio.to_thread(pipe.recv)
        if command == "storm":
            reply: Any = await worker.storm(*args)
        elif command == "updates":
            reply = await worker.updates(*args)
        elif command == "reconnected":
            reply = await worker.reconnected(*args)
        elif command == "stop":
            reply = await worker.stop()
        elif command == "cpu":
            reply = None  # the CPU seconds that go with every reply are the answer
        else:
            raise ValueError(f"unknown command {command!r}")
        pipe.send((reply, cpu_seconds()))
        if command == "stop":
            return


def worker_main(
    pipe: Connection, tokens: list[tuple[str, str]], index: int, workers: int, compression: bool
) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    raise_file_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(pipe, Worker(tokens, index, workers, compression)))
