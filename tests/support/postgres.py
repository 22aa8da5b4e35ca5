"""A real PostgreSQL for the tests: testcontainers' image where a Docker engine answers,
otherwise a private cluster of the local binaries (``initdb``/``postgres``, installed with
apt-get when missing), run as the ``postgres`` user when the tests run as root.

Each test gets its own database on the one server (:meth:`PostgresServer.new_database`), so
the tests stay isolated the way their own SQLite files keep them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import psycopg

from tests.support.broker import docker_engine_available
from tools.rabbit import apt_install, free_port

POSTGRES_IMAGE = "postgres:16-alpine"
USER = "postgres"
# durability is not what these tests are about: off, it saves seconds of fsync per session
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300")


@dataclass
class PostgresServer:
    """A running server where ``USER`` may connect without a password."""

    host: str
    port: int
    password: str = ""
    made: list[str] = field(default_factory=list)

    def _dsn(self, database: str) -> str:
        auth = f"{USER}:{self.password}" if self.password else USER
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; its URL for the services (``postgresql+asyncpg://…``)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self._dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)

    def drop_databases(self) -> None:
        """Drop the databases made so far (each copy of the template costs ~8 MB of disk)."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            while self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.made.pop()}" WITH (FORCE)')


def _binaries() -> Path:
    """The folder of ``initdb`` and ``postgres`` (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found is None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not versions:
            print("installing postgresql with apt-get …", flush=True)
            if (problem := apt_install("postgresql")) is not None:
                raise RuntimeError(problem)
            versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        found = versions[-1]
    return Path(os.path.realpath(found)).parent


class _Owner(TypedDict, total=False):
    """The ``user`` and ``group`` of ``subprocess.run``/``Popen``, when they are given."""

    user: str
    group: str


@dataclass
class LocalPostgres:
    """A private cluster in ``base`` (its data, socket and log), on its own port."""

    base: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def _as_owner(self) -> _Owner:
        # initdb and postgres refuse to run as root: they run as the postgres user then
        return {"user": USER, "group": USER} if os.geteuid() == 0 else {}

    def start(self) -> PostgresServer:
        bin_dir = _binaries()
        data, log = self.base / "data", self.base / "postgres.log"
        if os.geteuid() == 0:
            owner = pwd.getpwnam(USER)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "--no-sync"]
            + ["-E", "UTF8", "--locale=C"],
            check=True,
            capture_output=True,
            **self._as_owner(),
        )
        settings = [arg for option in FAST for arg in ("-c", option)]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port)]
                + ["-k", str(self.base), "-c", "listen_addresses=127.0.0.1", *settings],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest does not reach it first
                **self._as_owner(),
            )
        server = PostgresServer("127.0.0.1", self.port)
        self._wait_ready(server, log)
        return server

    def _wait_ready(self, server: PostgresServer, log: Path, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(server._dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                assert self.process is not None
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"postgres did not start:\n{tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the server this started, by its pid."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


SERVICES = ("presence", "chat", "calls", "help")


@dataclass
class Databases:
    """The databases of one test, of one kind (``sqlite`` or ``postgresql``): ``url(name)`` is
    the same URL for the same name (two stores on it are two replicas sharing a database)."""

    kind: str
    folder: Path
    server: PostgresServer | None = None
    urls: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        if name not in self.urls:
            if self.server is None:
                self.urls[name] = f"sqlite+aiosqlite:///{self.folder / f'{name}.db'}"
            else:
                self.urls[name] = self.server.new_database()
        return self.urls[name]

    def service_env(self) -> dict[str, str]:
        """``IM_<SERVICE>_DB_URL`` of every service (none for SQLite: the stack's default
        files in its data folder are SQLite already)."""
        if self.server is None:
            return {}
        return {f"IM_{service.upper()}_DB_URL": self.url(service) for service in SERVICES}


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server for as long as the context lasts."""
    if docker_engine_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, username=USER, driver=None) as container:
            yield PostgresServer(
                container.get_container_host_ip(),
                int(container.get_exposed_port(5432)),
                password=container.password,
            )
        return
    base = Path(tempfile.mkdtemp(prefix="im-postgres-"))
    cluster = LocalPostgres(base)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
