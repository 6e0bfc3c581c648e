"""The async engine, made from settings: PostgreSQL (asyncpg) in production, a SQLite file when embedded.

Make one engine per event loop (asyncpg connections belong to the loop that opened them) and dispose of it
when that loop ends: in the service, in an async startup hook; in the CLI, inside the `asyncio.run` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from domain.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, url.database)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A connection that PostgreSQL closed (restart, idle timeout) is replaced, not handed to a request.
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "vitrine"}},
    )


def create_read_engine(settings: Settings, writer: AsyncEngine) -> AsyncEngine:
    """The engine for queries that only read (product rows, keyword search, counts): on PostgreSQL its
    connections are in autocommit, so a read is its one statement. Through the writer's engine a read is six round
    trips: the pool's liveness ping inside BEGIN/ROLLBACK (SQLAlchemy wraps it so for pgbouncer's transaction
    mode), then BEGIN, the query and the ROLLBACK that resets the connection; in autocommit, the ping and the
    query. SQLite has no round trips to save: its reads use the writer's engine."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return writer
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "vitrine-reads"}},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit, without a lazy load (which async forbids).
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_engine(settings: Settings, database: str | None) -> AsyncEngine:
    # The file's folder (VITRINE_DATA_DIR for the default URL) is created here, so a fresh checkout just runs.
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(settings.resolved_database_url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the service read while an import writes; busy_timeout makes a second writer wait for the
    # lock instead of failing at once; SQLite leaves foreign keys off unless asked, per connection.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
