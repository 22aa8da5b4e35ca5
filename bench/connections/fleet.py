"""The parent's handle on the worker processes: start them, ask each the same question,
gather the answers (worker by worker; the students are dealt round-robin)."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.connections.worker import worker_main

JOIN_TIMEOUT_S = 20.0


class Fleet:
    def __init__(self, tokens: list[tuple[str, str]], workers: int, compression: bool) -> None:
        """``tokens``: (user_id, JWT) per student, dealt round-robin to ``workers`` processes
        (so each works through the whole connect ramp)."""
        context = multiprocessing.get_context("spawn")  # no inherited loops, threads or sockets
        workers = max(1, min(workers, len(tokens)))
        self.shares = [tokens[w::workers] for w in range(workers)]
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        self.cpu_s = [0.0] * len(self.shares)  # each worker's CPU seconds at its last reply
        self.stopped = False
        for index, share in enumerate(self.shares):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(child_end, share, index, workers, compression),
                daemon=True,
            )
            process.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.processes.append(process)

    async def ask(self, *command: Any) -> list[Any]:
        """Send ``command`` to every worker; return the replies, one per worker."""
        for pipe in self.pipes:
            pipe.send(command)
        replies = await asyncio.gather(*(asyncio.to_thread(p.recv) for p in self.pipes))
        out = []
        for i, (reply, cpu_s) in enumerate(replies):
            self.cpu_s[i] = cpu_s
            out.append(reply)
        return out

    async def ask_flat(self, *command: Any) -> list[Any]:
        """As :meth:`ask`, for per-student lists: one list in student order."""
        return [item for reply in await self.ask(*command) for item in reply]

    async def stop(self) -> list[Any]:
        """Every worker closes its sockets and exits; returns their last replies."""
        replies = await self.ask("stop")
        self.stopped = True
        return replies

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def close(self) -> None:
        """Wait for workers that were told to stop; terminate the rest (ours, by handle)."""
        for process in self.processes:
            process.join(JOIN_TIMEOUT_S if self.stopped else 0)
            if process.is_alive():
                process.terminate()
                process.join(5)
        for pipe in self.pipes:
            pipe.close()
