"""Writes on the event loop (shared.loop_writes) on a real SQLite file: where they run, what
happens while another connection holds the write lock, and the checkpoint they leave to a
worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from shared.db import ThreadedDatabase
from shared.loop_writes import LoopWrites
from tests.support.stack import poll

DEADLINE_S = 10.0


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "loop.db"


@pytest.fixture
async def db(db_file: Path) -> AsyncIterator[ThreadedDatabase]:
    database = ThreadedDatabase(f"sqlite+aiosqlite:///{db_file}")
    await database.migrate(lambda conn: conn.execute(text("CREATE TABLE t (v INTEGER)")))
    yield database
    await database.close()


def insert(value: int, seen: list[int] | None = None) -> Callable[[Connection], int]:
    """A write that records the thread it ran on."""

    def work(conn: Connection) -> int:
        if seen is not None:
            seen.append(threading.get_ident())
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return work


async def stored(db: ThreadedDatabase) -> list[int]:
    rows = await db.read(lambda conn: conn.execute(text("SELECT v FROM t ORDER BY v")).all())
    return [row[0] for row in rows]


async def test_a_write_runs_on_the_loop_thread_and_is_committed(db: ThreadedDatabase) -> None:
    seen: list[int] = []
    assert await db.write(insert(1, seen)) == 1
    assert seen == [threading.get_ident()]
    assert await stored(db) == [1]


async def test_a_write_that_fails_on_the_loop_leaves_nothing(db: ThreadedDatabase) -> None:
    def failing(conn: Connection) -> None:
        insert(7)(conn)
        raise ValueError("refused")

    with pytest.raises(ValueError):
        await db.write(failing)
    assert await stored(db) == []
    await db.write(insert(2))  # the loop's connection is fine afterwards
    assert await stored(db) == [2]


async def test_while_another_process_holds_the_lock_the_write_waits_in_a_thread(
    db: ThreadedDatabase, db_file: Path
) -> None:
    other = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (v) VALUES (1)")
    seen: list[int] = []
    writing = asyncio.ensure_future(db.write(insert(2, seen)))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not writing.done()  # neither refused nor done: waiting for the lock
    assert seen == []
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(writing, DEADLINE_S) == 2
    assert seen[0] != threading.get_ident()  # it ran in a worker thread, once
    assert await stored(db) == [1, 2]
    await db.write(insert(3, seen))  # and the next write is back on the loop
    assert seen[-1] == threading.get_ident()


def wal_frames(db_file: Path, page: int = 4096) -> int:
    """Frames the WAL file has room for: its header, then each page with a frame header."""
    return (Path(f"{db_file}-wal").stat().st_size - 32) // (page + 24)


def checkpointing_every(db: ThreadedDatabase, rows: int) -> LoopWrites:
    assert db.on_loop is not None
    db.on_loop.checkpoint_every = rows
    return db.on_loop


async def test_the_wal_is_checkpointed_by_a_worker_thread_every_so_many_changed_rows(
    db: ThreadedDatabase,
) -> None:
    on_loop = checkpointing_every(db, 5)
    for value in range(4):
        await db.write(insert(value))
    assert on_loop.checkpoints == 0
    await db.write(insert(4))
    await poll(lambda: on_loop.checkpoints > 0, DEADLINE_S, "a checkpoint")
    assert on_loop.changes_since_checkpoint == 0
    assert await stored(db) == [0, 1, 2, 3, 4]


async def test_one_write_of_many_rows_counts_them_all(db: ThreadedDatabase) -> None:
    on_loop = checkpointing_every(db, 5)

    def five_rows(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": v} for v in range(5)])

    await db.write(five_rows)
    await poll(lambda: on_loop.checkpoints == 1, DEADLINE_S, "a checkpoint after one write")


async def test_the_loop_connection_never_checkpoints_on_its_own(
    db: ThreadedDatabase, db_file: Path
) -> None:
    on_loop = checkpointing_every(db, 10_000)
    for value in range(1_200):  # a page each: past the 1,000 of SQLite's own checkpoint
        await db.write(insert(value))
    # a checkpointed WAL starts over from its first frame, so it never grows past ~1,000
    assert wal_frames(db_file) > 1_100
    assert on_loop.checkpoints == 0


async def test_without_writes_on_loop_every_write_runs_in_a_worker_thread(db_file: Path) -> None:
    database = ThreadedDatabase(f"sqlite+aiosqlite:///{db_file}", writes_on_loop=False)
    try:
        await database.migrate(lambda conn: conn.execute(text("CREATE TABLE t (v INTEGER)")))
        seen: list[int] = []
        await database.write(insert(1, seen))
        assert database.on_loop is None
        assert seen and seen[0] != threading.get_ident()
    finally:
        await database.close()


async def test_the_wal_stays_short_while_writes_never_stop(
    db: ThreadedDatabase, db_file: Path
) -> None:
    """Passive checkpoints running beside a steady stream of commits never copy all of the
    WAL, and only a write that starts after one did may start the WAL over."""
    on_loop = checkpointing_every(db, 20)
    on_loop.restart_frames = 400
    for value in range(4_000):  # a page each
        await db.write(insert(value))
        await asyncio.sleep(0)  # the loop serves others between writes, as in a service
    await poll(lambda: db._checkpointing is None, DEADLINE_S, "the last checkpoint")
    assert on_loop.checkpoints >= 4_000 // 20 // 2 and on_loop.restarts > 0
    assert wal_frames(db_file) < 1_200
    assert len(await stored(db)) == 4_000
