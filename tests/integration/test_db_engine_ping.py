"""adapters/db/engine.py `ping_when_idle` on the real PostgreSQL: a pooled connection the server closed is replaced
before use when it sat idle; one used a moment ago costs its one request, and the pool connects afresh after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from adapters.db.engine import create_engine, create_read_engine
from domain.settings import Settings

pytestmark = pytest.mark.integration


async def backend_pid(engine: sa.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(engine: sa.ext.asyncio.AsyncEngine, pid: int) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.sleep(0.1)  # the backend is gone once the server has processed it


@pytest.fixture(params=["writer", "reader"])
async def engines(request, postgres_url, tmp_path):
    """The engine under test (pool of one, so the same connection comes back) and a second one to kill with."""
    settings = Settings(DATABASE_URL=postgres_url, VITRINE_DATA_DIR=tmp_path, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    writer = create_engine(settings)
    engine = writer if request.param == "writer" else create_read_engine(settings, writer)
    admin = create_engine(Settings(DATABASE_URL=postgres_url, VITRINE_DATA_DIR=tmp_path))
    yield engine, admin
    for each in {engine, writer, admin}:
        await each.dispose()


async def test_a_connection_closed_while_idle_is_replaced_before_use(engines, monkeypatch):
    engine, admin = engines
    first = await backend_pid(engine)
    await terminate(admin, first)
    monkeypatch.setattr("time.monotonic", _later(60.0))  # it has sat in the pool for a minute
    assert await backend_pid(engine) != first  # pinged, found gone, replaced: the request never saw it


async def test_a_connection_closed_right_after_use_costs_one_request_then_the_pool_recovers(engines):
    engine, admin = engines
    first = await backend_pid(engine)
    await terminate(admin, first)
    with pytest.raises(DBAPIError):
        await backend_pid(engine)  # used a moment ago: trusted, not pinged (a ping per checkout costs CPU)
    assert await backend_pid(engine) != first


async def test_an_idle_connection_that_is_alive_is_kept(engines, monkeypatch):
    engine, _ = engines
    first = await backend_pid(engine)
    monkeypatch.setattr("time.monotonic", _later(60.0))
    assert await backend_pid(engine) == first


def _later(seconds: float) -> Callable[[], float]:
    """time.monotonic, `seconds` on: every pooled connection looks that long idle (asyncio's clock moves alike)."""
    real = time.monotonic
    return lambda: real() + seconds

