"""Alembic environment: async drivers (asyncpg, aiosqlite), PostgreSQL or SQLite.

The database URL comes from, in order: `config.attributes["sqlalchemy.url"]` (what adapters/db/migrate.py
sets; attributes, unlike ini options, need no %-escaping), the `sqlalchemy.url` ini option, then the
service's settings (`DATABASE_URL`, or the embedded SQLite file). A caller may also hand over an open sync
connection as `config.attributes["connection"]`.
"""

from __future__ import annotations

import asyncio
import logging.config
from concurrent.futures import ThreadPoolExecutor

from alembic import context
from sqlalchemy.engine import Connection

from adapters.db.engine import create_engine
from adapters.db.keyword_search import is_keyword_index_object
from adapters.db.tables import metadata
from domain.settings import Settings, get_settings

config = context.config
target_metadata = metadata

# Only the `alembic` command line brings an ini file with logging sections; called from code, leave the
# application's logging alone.
if config.config_file_name is not None and config.get_section("loggers") is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    url = config.attributes.get("sqlalchemy.url") or config.get_main_option("sqlalchemy.url")
    # Accept plain postgresql:// and sqlite:/// too, exactly as DATABASE_URL does.
    return Settings(database_url=url) if url else get_settings()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The keyword-search objects (migration 0002: tsvector column and GIN index, FTS5 table and triggers)
        # live outside the SQLAlchemy metadata on purpose; autogenerate must not propose dropping them.
        include_name=lambda name, type_, parents: not is_keyword_index_object(name, type_, parents),
    )


def _run_on(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(settings: Settings) -> None:
    # The service's own engine factory: same SQLite pragmas, and it creates the SQLite file's folder.
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    settings = _settings()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(settings))
        return
    # Called from inside a running event loop (an async test, a service startup hook): asyncio.run would
    # refuse, so the migration gets a loop of its own on a worker thread, and this call blocks until done.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _run_async(settings)).result()


def run_migrations_offline() -> None:
    context.configure(
        url=_settings().resolved_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
