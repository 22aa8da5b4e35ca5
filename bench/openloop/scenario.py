"""The shape every workload of either system takes, so one runner drives them all.

A step first *prepares*: opens fresh connections (point-to-point) or reuses the connected
students (fanout) and warms up with one unmeasured message per sender. Then, once the
system is quiet again, it *starts*: installs the measuring handlers and hands the runner
one ``Sender`` per sending connection.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from bench.openloop.recorder import Delivery, FanoutLog, MessageLog
from bench.openloop.schedule import Sender
from bench.openloop.socket_client import SocketClient, close_all

CONNECT_CONCURRENCY = 25  # sockets opened at once: enough to be quick, few enough to not time out
# A warm-up message is sent again until every receiver has one: a push can be missed right
# after connecting (the gateway says `connected` before the user's binding exists).
WARM_UP_TRIES = 15
WARM_UP_TRY_S = 2.0

Pair = TypeVar("Pair")
System = TypeVar("System")  # the system under test (ours, the peer)
Client = TypeVar("Client", bound=SocketClient[Any])
Result = TypeVar("Result")


class StepLog(Protocol):
    scheduled: list[float]

    def on_sent(self, seq: int, at: float) -> None: ...

    def settled(self) -> bool: ...

    def summary(self, duration_s: float) -> Delivery: ...


class Scenario(Protocol):
    system: str  # "ours", "peer" or "peer-durable"
    workload: str

    async def prepare(self, tag: str) -> None:
        """Connect (and set up) what step ``tag`` needs and warm up, all unmeasured."""

    def start(self, tag: str, count: int) -> tuple[StepLog, list[Sender]]:
        """Install the measuring handlers; return the log and one sender per connection."""

    async def close_step(self) -> None: ...

    async def close(self) -> None: ...


def key_of(tag: str, seq: int) -> str:
    """The id a message carries (``ref``, ``client_msg_id``, ...): ``<step tag>.<seq>``."""
    return f"{tag}.{seq}"


def seq_of(key: object, tag: str) -> int | None:
    """The sequence number in ``key`` when it belongs to step ``tag``, else None."""
    if not isinstance(key, str) or not key.startswith(tag + "."):
        return None
    tail = key[len(tag) + 1 :]
    return int(tail) if tail.isdigit() else None


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[Result]]]) -> list[Result]:
    """Run the jobs at most ``CONNECT_CONCURRENCY`` at a time; results in order."""
    slots = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def bounded(job: Callable[[], Awaitable[Result]]) -> Result:
        async with slots:
            return await job()

    return list(await asyncio.gather(*(bounded(job) for job in jobs)))


async def until_all_arrived(
    arrivals: list[asyncio.Future[Any]], send: Callable[[int], Awaitable[object]], what: str
) -> None:
    """Warm up: ``send(attempt)`` until every future in ``arrivals`` is done."""
    pending: set[asyncio.Future[Any]] = set(arrivals)
    for attempt in range(WARM_UP_TRIES):
        await send(attempt)
        _, pending = await asyncio.wait(pending, timeout=WARM_UP_TRY_S)
        if not pending:
            return
    raise RuntimeError(f"warm-up {what}: {len(pending)} of {len(arrivals)} receivers got nothing")


class PointToPoint(ABC, Generic[Pair, System]):
    """``pairs`` sender → receiver pairs on ``target``, new users for every step."""

    system = ""
    workload = ""
    matched_by_order = False  # deliveries carry no id: the k-th of a pair is its k-th send

    def __init__(self, target: System, pairs: int, deflate: bool) -> None:
        self.target = target
        self.deflate = deflate
        self.pair_count = pairs
        self.pairs: list[Pair] = []

    @abstractmethod
    async def open_pair(self, tag: str, index: int) -> Pair: ...

    @abstractmethod
    async def warm_up(self, pair: Pair, tag: str) -> None:
        """One unmeasured message through the whole path, delivered before returning."""

    @abstractmethod
    def listen(self, pair: Pair, index: int, tag: str, log: MessageLog) -> Sender:
        """Install the measuring handlers of ``pair``; return its sender."""

    @abstractmethod
    async def close_pair(self, pair: Pair) -> None: ...

    async def prepare(self, tag: str) -> None:
        self.pairs = await gather_bounded(
            partial(self.open_pair, tag, p) for p in range(self.pair_count)
        )
        await asyncio.gather(*(self.warm_up(pair, f"{tag}w") for pair in self.pairs))

    def start(self, tag: str, count: int) -> tuple[StepLog, list[Sender]]:
        log = MessageLog(count, self.matched_by_order)
        return log, [self.listen(pair, p, tag, log) for p, pair in enumerate(self.pairs)]

    async def close_step(self) -> None:
        await asyncio.gather(*(self.close_pair(pair) for pair in self.pairs))
        self.pairs = []

    async def close(self) -> None:
        await self.close_step()


class Fanout(ABC, Generic[Client, System]):
    """One mentor and ``students`` receivers on ``target``, connected once and kept for every
    step."""

    system = ""
    workload = "fanout"

    def __init__(self, target: System, students: int, deflate: bool) -> None:
        self.target = target
        self.deflate = deflate
        self.student_count = students
        self.connected = False
        self.mentor: Client | None = None
        self.students: list[Client] = []

    @abstractmethod
    async def connect(self, run_tag: str) -> None: ...

    @abstractmethod
    async def warm_up(self, tag: str) -> None:
        """One unmeasured change, seen by every student before returning."""

    @abstractmethod
    def listen(self, tag: str, log: FanoutLog) -> Sender: ...

    def unlisten(self) -> None:
        for client in (self.mentor, *self.students):
            if client is not None:
                client.unlisten()

    async def prepare(self, tag: str) -> None:
        if not self.connected:
            await self.connect(tag)
            self.connected = True
        await self.warm_up(f"{tag}w")

    def start(self, tag: str, count: int) -> tuple[StepLog, list[Sender]]:
        log = FanoutLog(count, self.student_count)
        return log, [self.listen(tag, log)]

    async def close_step(self) -> None:
        self.unlisten()

    async def close(self) -> None:
        await close_all((self.mentor, *self.students))
        self.mentor, self.students, self.connected = None, [], False
