"""SQLite writes on the event loop's own thread.

On SQLite (WAL, ``synchronous=NORMAL``) a write transaction waits for no I/O: its commit
appends to the WAL in the operating system's page cache, and only a checkpoint syncs the disk.
Handing such a transaction to a worker thread cost more than running it: the hop there and
back, and the thread waiting for the GIL that the busy event loop holds. At 500 chat messages/s
a batch of one or two messages took 1.7 ms of wall time at p50 and 10 ms at p99 in the thread,
for a few tenths of a millisecond of work. So :class:`LoopWrites` runs a write right where it
is asked for, on a connection of its own that:

* never waits for the file's write lock (``busy_timeout=0``): while another connection holds
  it (a replica sharing the file, a write already handed to a thread), the write raises
  :class:`Busy` before doing anything, and the caller hands it to the worker threads, which
  wait for the lock as before;
* never checkpoints (``wal_autocheckpoint=0``): the checkpoint, the one step that syncs the
  disk, is left to a worker thread, which :meth:`checkpoint` runs every
  :data:`CHECKPOINT_EVERY` commits, so the WAL stays about as short as SQLite's own automatic
  checkpoint keeps it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

T = TypeVar("T")

# SQLite's automatic checkpoint comes every 1,000 WAL pages; a chat message's commit writes
# about five (its row, three index leaves, its conversation's counter).
CHECKPOINT_EVERY = 200


class Busy(Exception):
    """Another connection holds the file's write lock: nothing was done."""


class LoopWrites:
    """``prepare`` sets up each new connection (WAL, ``BEGIN IMMEDIATE``: see shared.db)."""

    def __init__(
        self,
        url: sqlalchemy.URL,
        prepare: Callable[[Engine, int, bool], None],
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.engine = sqlalchemy.create_engine(
            url,
            connect_args={"check_same_thread": False},  # disposed of from a worker thread
            pool_size=1,
            max_overflow=0,
            hide_parameters=True,
        )
        prepare(self.engine, 0, False)  # busy_timeout=0, no automatic checkpoint
        self.checkpoint_every = checkpoint_every
        self.commits_since_checkpoint = 0
        self.checkpoints = 0

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction, now; :class:`Busy` when the lock is taken (then
        ``work`` never ran, or its transaction was rolled back whole)."""
        try:
            with self.engine.begin() as conn:
                result = work(conn)
        except OperationalError as error:
            if _is_busy(error):
                raise Busy(str(error.orig)) from error
            raise
        self.commits_since_checkpoint += 1
        return result

    def checkpoint_due(self) -> bool:
        return self.commits_since_checkpoint >= self.checkpoint_every

    def checkpoint(self, engine: Engine) -> None:
        """Copy the WAL into the database file as far as no reader needs it (``PASSIVE``:
        never waits, never blocks a writer). Run it in a worker thread, with a connection of
        ``engine`` (the worker threads' own)."""
        self.commits_since_checkpoint = 0
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
        finally:
            raw.close()
        self.checkpoints += 1

    def close(self) -> None:
        self.engine.dispose()


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
