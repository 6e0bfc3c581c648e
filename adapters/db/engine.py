"""The async engine, made from settings: PostgreSQL (asyncpg) in production, a SQLite file when embedded.

Make one engine per event loop (asyncpg connections belong to the loop that opened them) and dispose of it
when that loop ends: in the service, in an async startup hook; in the CLI, inside the `asyncio.run` call.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from domain.settings import Settings

IDLE_PING_S = 1.0  # a pooled connection unused this long is pinged before use (`ping_when_idle`)


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, url.database)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_use_lifo=True,  # the same few connections serve while they suffice: they skip the idle ping
        connect_args={"server_settings": {"application_name": "vitrine"}},
    )
    ping_when_idle(engine)
    return engine


def create_read_engine(settings: Settings, writer: AsyncEngine) -> AsyncEngine:
    """The engine for queries that only read (product rows, keyword search, counts): on PostgreSQL its
    connections are in autocommit, so a read is its one statement. Through the writer's engine a read is three
    round trips: BEGIN, the query and the ROLLBACK that resets the connection. SQLite has no round trips to save:
    its reads use the writer's engine."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return writer
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_use_lifo=True,
        connect_args={"server_settings": {"application_name": "vitrine-reads"}},
    )
    ping_when_idle(engine)
    return engine


def ping_when_idle(engine: AsyncEngine, *, idle_s: float = IDLE_PING_S) -> None:
    """Ping a pooled connection before handing it out only when it sat unused for `idle_s` or longer.

    A connection PostgreSQL closed (restart, failover, idle timeout) is then replaced, not handed to a request,
    as SQLAlchemy's `pool_pre_ping` does; but that pings at every checkout, a round trip (three on the writer:
    BEGIN, the ping, ROLLBACK) and 7% of the API worker's CPU in a bunched wave (py-spy). The pools hand out
    their most recently used connection first (LIFO), so under load the connections in use were used a moment
    ago and skip the ping. A connection used within `idle_s` is trusted: only one in use when the server went
    away can fail a request (503, retryable), as it would have failed with a ping too; after an outage longer
    than `idle_s` every pooled connection is pinged before use (a 10 s threshold let the read pool hand out a
    connection killed while idle, measured by the chaos tests). SQLAlchemy, seeing a disconnect, discards every
    connection in that pool."""

    def note_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return  # new, or used a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc  # the pool connects anew

    event.listen(engine.sync_engine, "checkin", note_checkin)
    event.listen(engine.sync_engine, "checkout", ping_if_idle)


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
