"""Each service's schema, made and changed by its own Alembic history, applied on start.

Every service has the same layout: ``services/<service>/migrations/`` holds an ``env.py``
(three lines: the service's metadata handed to :func:`run_env`), ``script.py.mako`` and
``versions/``. Its revisions are recorded in the table ``alembic_version_<service>``, so
services may even share one database without mixing their histories.

:func:`upgrade` runs in a transaction of the service's own engine, on SQLite and PostgreSQL
alike. Replicas starting together upgrade one after the other: on SQLite the write
transaction (``BEGIN IMMEDIATE``) holds the file's lock, on PostgreSQL a transaction-level
advisory lock keyed by the service; the one that comes second finds the schema at head.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import sqlalchemy
from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

SERVICES = Path(__file__).resolve().parent.parent / "services"
# the revision that creates the schema the services had before migrations existed
BASELINE = "0001"


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def config(service: str, connection: Connection | None = None) -> Config:
    """The Alembic configuration of ``service`` (no ini file: everything is set here)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES / service / "migrations"))
    cfg.attributes["service"] = service
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(conn: Connection, service: str, metadata: MetaData) -> None:
    """Bring the database of ``conn`` to the newest revision of ``service``, in the
    transaction of ``conn``. A database made before migrations existed (every table of
    ``metadata`` there, no version table) is first recorded as being at the baseline."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(service)})
    cfg = config(service, conn)
    if _made_before_migrations(conn, service, metadata):
        log.info("%s: tables made before migrations; recorded as revision %s", service, BASELINE)
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, "head")
    log.info("%s: schema at the newest revision on %s", service, conn.dialect.name)


async def upgrade_engine(engine: AsyncEngine, service: str, metadata: MetaData) -> None:
    """:func:`upgrade` in a transaction of an async engine."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade, service, metadata)


def _made_before_migrations(conn: Connection, service: str, metadata: MetaData) -> bool:
    present = set(sqlalchemy.inspect(conn).get_table_names())
    return version_table(service) not in present and set(metadata.tables) <= present


def _lock_key(service: str) -> int:
    """A stable signed 64-bit key of the service's migration lock."""
    digest = hashlib.sha256(f"instantmentor-migrations:{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: run the migrations on the connection handed
    over by :func:`upgrade` (or, from the ``alembic`` command line, on ``sqlalchemy.url``)."""
    cfg = context.config
    location = Path(cfg.get_main_option("script_location", "."))
    service = str(cfg.attributes.get("service") or location.parent.name)
    conn: Connection | None = cfg.attributes.get("connection")
    if conn is not None:
        _run_on(conn, service, metadata)
        return
    engine = sqlalchemy.create_engine(cfg.get_main_option("sqlalchemy.url", ""))
    with engine.begin() as opened:
        _run_on(opened, service, metadata)
    engine.dispose()


def _run_on(conn: Connection, service: str, metadata: MetaData) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        version_table=version_table(service),
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
