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
  disk, is left to a worker thread, which :meth:`checkpoint` runs each time the loop's
  transactions changed :data:`CHECKPOINT_EVERY` rows (counted in rows, not commits: a group
  commit of a burst writes a hundred messages at once).

SQLite starts the WAL over from its first frame only when a write begins after a checkpoint
copied all of it into the database file. A checkpoint in a thread, beside a loop that keeps
committing, seldom has: frames committed while it ran are left for the next one. Under steady
load the WAL then only grew (690 MB after 50,000 chat messages, for a 28 MB database). So once
it is :data:`RESTART_FRAMES` long, the next checkpoint is a ``RESTART``: it holds the write
lock until it has copied everything and no reader is left in the WAL (a few milliseconds in
which writes on the loop find the lock taken and go to a worker thread, as above), so the next
write starts the WAL over, and cuts its file back to ``journal_size_limit`` (shared.db).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar, cast

import sqlalchemy
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

T = TypeVar("T")

# SQLite's automatic checkpoint comes every 1,000 WAL pages; a chat message changes two rows
# (its own, its conversation's counter) and writes about five pages (with three index leaves).
CHECKPOINT_EVERY = 400
# 32 MiB of 4 KiB pages: at 500 chat messages/s about one RESTART checkpoint every 3 s.
RESTART_FRAMES = 8_192


class Busy(Exception):
    """Another connection holds the file's write lock: nothing was done."""


class LoopWrites:
    """``prepare`` sets up each new connection (WAL, ``BEGIN IMMEDIATE``: see shared.db)."""

    def __init__(
        self,
        url: sqlalchemy.URL,
        prepare: Callable[[Engine, int, bool], None],
        checkpoint_every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
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
        self.restart_frames = restart_frames
        self.changes_since_checkpoint = 0
        self.checkpoints = 0
        self.restarts = 0
        self.wal_frames = 0  # the WAL's length at the last checkpoint

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction, now; :class:`Busy` when the lock is taken (then
        ``work`` never ran, or its transaction was rolled back whole)."""
        try:
            with self.engine.begin() as conn:
                raw = cast(sqlite3.Connection, conn.connection.dbapi_connection)
                before = raw.total_changes
                result = work(conn)
                changed = raw.total_changes - before
        except OperationalError as error:
            if _is_busy(error):
                raise Busy(str(error.orig)) from error
            raise
        self.changes_since_checkpoint += changed
        return result

    def checkpoint_due(self) -> bool:
        return self.changes_since_checkpoint >= self.checkpoint_every

    def checkpoint(self, engine: Engine) -> None:
        """Copy the WAL into the database file as far as no reader needs it (``PASSIVE``:
        never waits, never blocks a writer), or all of it and start it over once it is
        ``restart_frames`` long (``RESTART``). Run it in a worker thread, with a connection of
        ``engine`` (the worker threads' own, which wait for locks)."""
        self.changes_since_checkpoint = 0
        restart = self.wal_frames >= self.restart_frames
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(f"PRAGMA wal_checkpoint({'RESTART' if restart else 'PASSIVE'})")
            busy, frames, _copied = cursor.fetchall()[0]  # frames in the WAL, copied
        finally:
            raw.close()
        self.checkpoints += 1
        if restart and not busy:
            self.restarts += 1
            frames = 0
        self.wal_frames = frames

    def close(self) -> None:
        self.engine.dispose()


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
