"""Each service's Alembic history on SQLite and on PostgreSQL (no broker): its first revision
makes exactly the tables, keys and indexes the code declares, replicas starting together
migrate once, and a database made before migrations existed is adopted as it is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, insert, select
from sqlalchemy.engine import make_url

from services.calls.store import metadata as calls_metadata
from services.chat.tables import metadata as chat_metadata
from services.help.tables import metadata as help_metadata
from services.presence.store import metadata as presence_metadata
from shared.db import SYNC_DRIVERS, ThreadedDatabase
from shared.migrations import BASELINE, config, upgrade, version_table
from tests.support.postgres import Databases

METADATA: dict[str, MetaData] = {
    "calls": calls_metadata,
    "chat": chat_metadata,
    "help": help_metadata,
    "presence": presence_metadata,
}


@pytest.fixture
def engine_of(databases: Databases) -> Iterator[dict[str, Engine]]:
    """A sync engine per service, each on a new database of the test's kind."""
    engines: dict[str, Engine] = {}
    for service in METADATA:
        url = make_url(databases.url(service))
        engines[service] = sqlalchemy.create_engine(
            url.set(drivername=SYNC_DRIVERS[url.drivername])
        )
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.mark.parametrize("service", sorted(METADATA))
def test_the_migrations_make_exactly_the_declared_schema(
    service: str, engine_of: dict[str, Engine]
) -> None:
    engine = engine_of[service]
    with engine.begin() as conn:
        upgrade(conn, service, METADATA[service])
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": version_table(service)}
        )
        assert compare_metadata(context, METADATA[service]) == []
        tables = set(sqlalchemy.inspect(conn).get_table_names())
        assert tables == set(METADATA[service].tables) | {version_table(service)}


async def test_replicas_starting_together_migrate_once(databases: Databases) -> None:
    replicas = [ThreadedDatabase(databases.url("chat")) for _ in range(4)]  # as chat opens it
    try:
        await asyncio.gather(
            *(db.migrate(lambda conn: upgrade(conn, "chat", chat_metadata)) for db in replicas)
        )
        query = sqlalchemy.text(f"SELECT * FROM {version_table('chat')}")
        versions = await replicas[0].read(lambda conn: [tuple(r) for r in conn.execute(query)])
        head = ScriptDirectory.from_config(config("chat")).get_current_head()
        assert versions == [(head,)]
    finally:
        for db in replicas:
            await db.close()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(
    engine_of: dict[str, Engine],
) -> None:
    engine = engine_of["help"]
    mentors = help_metadata.tables["help_mentors"]
    with engine.begin() as conn:  # as HelpStore.open did with create_all
        help_metadata.create_all(conn)
        conn.execute(
            insert(mentors).values(
                mentor_id="m1", name="M", status="available", online=True, updated_at="t"
            )
        )
    with engine.begin() as conn:
        upgrade(conn, "help", help_metadata)
    with engine.connect() as conn:
        assert conn.execute(select(mentors.c.mentor_id)).scalars().all() == ["m1"]
        version = conn.execute(sqlalchemy.text(f"SELECT * FROM {version_table('help')}"))
        assert version.scalar_one() == BASELINE
