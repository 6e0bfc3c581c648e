"""Shared fixtures: a fresh PostgreSQL database, a migrated SQLite file, Redis, and the shared data files.

PostgreSQL and Redis are required, never skipped: CI guarantees both, so a missing one is a failure with a
message saying where it was looked for. Override the locations with TEST_POSTGRES_URL (an admin connection,
default postgresql://postgres@127.0.0.1:5432/postgres) and TEST_REDIS_URL (default redis://127.0.0.1:6379/15).

The shared data lives beside the repository (../shared/data), in this checkout and in CI alike; tests read
it in place and never copy it into the repository.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_FEED = SHARED_DATA / "fashion-product-images" / "awin-feed.csv"
LULULEMON_FEED = SHARED_DATA / "awin" / "lululemon-us-sample.csv"

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _shared_file(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"shared data file missing: {path} (expected ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def fashion_feed() -> Path:
    """The 1,099-product fashion feed (awin-feed.csv); its images are beside it, in images/."""
    return _shared_file(FASHION_FEED)


@pytest.fixture(scope="session")
def lululemon_feed() -> Path:
    """Ten rows of a real Awin export: 36 columns, `image_url` rather than `aw_image_url`."""
    return _shared_file(LULULEMON_FEED)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


async def _postgres_admin(*statements: str) -> None:
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({error}); the tests need it", pytrace=False
        )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _fresh_postgres_database() -> Iterator[str]:
    from sqlalchemy.engine import make_url

    from adapters.db.migrate import upgrade

    name = f"vitrine_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        upgrade(rendered)
        yield rendered
    finally:
        # FORCE: an engine a test forgot to dispose must not keep the database alive.
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database, vitrine_test_<random>, migrated to head (postgresql+asyncpg URL); dropped at the end.

    Shared by the whole session, so tests must not assume it is empty; see `empty_postgres_url`.
    """
    yield from _fresh_postgres_database()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """Like `postgres_url`, but a database of this test's own (about half a second to make)."""
    yield from _fresh_postgres_database()


# --- SQLite -------------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in this test's tmp_path, migrated to head."""
    from adapters.db.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'vitrine.db'}"
    upgrade(url)
    return url


# --- Redis --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Database 15 of the test Redis, emptied once at the start of the session."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} ({error}); the tests need it", pytrace=False)
    finally:
        client.close()
    return REDIS_TEST_URL
