"""Each service's own database: SQLAlchemy 2, SQLite (WAL) unless a URL says otherwise.

Two ways in: an async engine (``create_engine``), and :class:`ThreadedDatabase`, a sync
engine whose units of work each run whole in a worker thread. The second is for hot paths:
through aiosqlite every statement costs several thread round trips (cursor, execute, fetch,
close), so a six-statement transaction cost ~4 ms on the 2-core machine; run in one thread hop
it costs a fraction of that. On a SQLite file its writes skip even that hop, and run on the
event loop itself (:mod:`shared.loop_writes`).

PostgreSQL (``postgresql+asyncpg://…``; the threaded engine uses psycopg 3) has no file lock to
queue replicas behind: there, a :class:`ThreadedDatabase` write runs at SERIALIZABLE and is
run again whole when PostgreSQL refuses it for a concurrent one (serialization failure or
deadlock), and the async engines' stores decide their races by conditional statements and
row locks (see each store).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from shared.loop_writes import Busy, LoopWrites

log = logging.getLogger(__name__)

READ_ONLY = "im_read_only"
DEFAULT_POOL_SIZE = 5
# Bytes a WAL file is cut back to when it starts over (it keeps its longest size otherwise)
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# SQLSTATEs after which PostgreSQL asks for the whole transaction to be run again
SERIALIZATION_FAILURE, DEADLOCK_DETECTED = "40001", "40P01"
WRITE_ATTEMPTS = 30
T = TypeVar("T")
# async driver → its synchronous sibling, for ThreadedDatabase
SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite+pysqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def create_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """An engine for ``url`` keeping up to ``pool_size`` connections. For SQLite: the folder
    is created, WAL is on, and every transaction starts with ``BEGIN IMMEDIATE`` so that
    replicas sharing the file serialize their read-modify-write transactions instead of
    failing on a lock upgrade."""
    is_sqlite = _prepare_sqlite_folder(url)
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30} if is_sqlite else {},
        pool_size=pool_size,
        hide_parameters=True,  # no message text, name or payload in a logged statement error
    )
    if is_sqlite:
        _sqlite_transactions(engine.sync_engine)
    return engine


def _prepare_sqlite_folder(url: str) -> bool:
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return is_sqlite


def _wal(cursor: Any, timeout_s: float = 30.0) -> None:
    """Put the file in WAL mode (it stays so). Switching fails at once, without waiting for
    the busy timeout, while another connection writes (replicas creating a new file at the
    same moment): it is asked only when not done yet, and asked again until it is."""
    deadline = time.monotonic() + timeout_s
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
        except Exception as error:  # sqlite3's, or the async adapter's OperationalError
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the SQLite file stayed out of WAL mode")
        time.sleep(0.01)


def _sqlite_transactions(
    engine: Engine, busy_timeout_ms: int = 30_000, autocheckpoint: bool = True
) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        _wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def must_retry(error: DBAPIError) -> bool:
    """Whether PostgreSQL refused a transaction for a concurrent one (run it again whole)."""
    return getattr(error.orig, "sqlstate", None) in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED)


class ThreadedDatabase:
    """A sync engine; :meth:`write` and :meth:`read` run a function with a connection in a
    transaction, whole, in one of ``pool_size`` worker threads (SQLite: the same BEGIN rules
    as :func:`create_engine`; its driver releases the GIL while SQLite works). On a SQLite
    file a write runs on the event loop's thread instead, unless another connection holds
    the write lock at that moment (``writes_on_loop``; see :mod:`shared.loop_writes`): the
    function must then not hold the loop for long, as for any work done on the loop.

    On PostgreSQL a write runs at SERIALIZABLE: PostgreSQL then guarantees the outcome of
    some one-at-a-time order of the replicas' writes (what BEGIN IMMEDIATE gives on SQLite),
    refusing a transaction that would break it; the function is then run again from the
    start, so it must have no effect outside the connection."""

    def __init__(
        self, url: str, pool_size: int = DEFAULT_POOL_SIZE, writes_on_loop: bool = True
    ) -> None:
        parsed = make_url(url)
        driver = SYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
        sync_url = parsed.set(drivername=driver)
        is_sqlite = _prepare_sqlite_folder(url)
        self.engine = sqlalchemy.create_engine(
            sync_url,
            connect_args={"timeout": 30, "check_same_thread": False} if is_sqlite else {},
            pool_size=pool_size,
            hide_parameters=True,  # message texts never reach a log
        )
        if is_sqlite:
            _sqlite_transactions(self.engine)
        self.serializable = self.engine.dialect.name == "postgresql"
        self._writes = (
            self.engine.execution_options(isolation_level="SERIALIZABLE")
            if self.serializable
            else self.engine
        )
        self._reads = self.engine.execution_options(**_read_options(self.engine.dialect.name))
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="db")
        self.retries = 0  # writes run again after PostgreSQL refused them (observability)
        on_file = is_sqlite and parsed.database not in (None, "", ":memory:")
        self.on_loop = (
            LoopWrites(sync_url, _sqlite_transactions) if on_file and writes_on_loop else None
        )
        self._checkpointing: asyncio.Future[None] | None = None

    async def write(self, work: Callable[[Connection], T]) -> T:
        if self.on_loop is not None:
            try:
                result = self.on_loop.write(work)
            except Busy:
                pass  # another connection writes: wait for it in a worker thread
            else:
                if self.on_loop.checkpoint_due() and self._checkpointing is None:
                    self._start_checkpoint(self.on_loop)
                return result
        return await self._run(self._writes, work, retry=self.serializable)

    def _start_checkpoint(self, on_loop: LoopWrites) -> None:
        loop = asyncio.get_running_loop()
        self._checkpointing = loop.run_in_executor(self._threads, on_loop.checkpoint, self.engine)
        self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("WAL checkpoint failed: %r", done.exception())

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(self._reads, work)

    async def migrate(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (a schema upgrade) in a plain transaction: READ COMMITTED on
        PostgreSQL, so that after waiting for another replica's upgrade it sees the result."""
        return await self._run(self.engine, work)

    async def _run(self, engine: Engine, work: Callable[[Connection], T], retry: bool = False) -> T:
        def in_transaction() -> T:
            with engine.begin() as conn:
                return work(conn)

        def with_retries() -> T:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    return in_transaction()
                except DBAPIError as error:
                    if not must_retry(error) or attempt == WRITE_ATTEMPTS:
                        raise
                    self.retries += 1
                    # spread the retries of colliding replicas apart (up to ~50 ms)
                    time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
            raise AssertionError("unreachable")

        return await asyncio.get_running_loop().run_in_executor(
            self._threads, with_retries if retry else in_transaction
        )

    async def close(self) -> None:
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self.on_loop is not None:
            self.on_loop.close()
        await asyncio.get_running_loop().run_in_executor(self._threads, self.engine.dispose)
        self._threads.shutdown(wait=False)


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine for reads: plain ``BEGIN``, so reads never queue behind writers (WAL
    readers see the last committed state)."""
    return engine.execution_options(**_read_options(engine.dialect.name))


def _read_options(dialect: str) -> dict[str, Any]:
    """A read transaction sees one snapshot throughout, as a SQLite read transaction does:
    on PostgreSQL that is REPEATABLE READ (which never refuses a transaction that only reads)."""
    if dialect == "postgresql":
        return {READ_ONLY: True, "isolation_level": "REPEATABLE READ"}
    return {READ_ONLY: True}


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
