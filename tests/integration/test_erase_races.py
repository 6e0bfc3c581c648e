"""A privacy erase is final for every write that read the shopper's data before it (adapters/erasure.py).

Each race is made deterministic by holding a writer between its read and its write at a real dependency:
the product vectors (the index, read by a profile recompute and by feedback between the stored event and the
session write) or the profile row read (the cache fill). The erase then runs whole, the writer is let go,
and the shopper must stay erased: in PostgreSQL and in Redis. Writers of other shoppers, and feedback that
arrives after the erase, write as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from adapters import privacy
from adapters.cache import Cache
from adapters.db.engine import create_engine
from adapters.db.interactions import SqlInteractionLog
from adapters.db.tables import user_profiles
from adapters.user_state import CacheSessionStore, CacheUserVersions, Profiles
from domain import cache_keys
from domain.api_models import FeedbackRequest
from domain.feedback import FeedbackPipeline
from domain.ports import Vector
from domain.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "m:erase-test"
DIM = 8
_users = count(int(time.time() * 1000) % 10**9 * 10)  # fresh ids per run: the PostgreSQL database is shared


def unit(product_id: int) -> Vector:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[product_id % DIM] = 1.0
    return vector


class HeldVectors:
    """The index's product vectors; while `hold` is set, each caller waits at the read until `release`."""

    def __init__(self) -> None:
        self.hold = False
        self.waiting = 0
        self._arrived = asyncio.Condition()
        self._released = asyncio.Event()

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        if self.hold:
            async with self._arrived:
                self.waiting += 1
                self._arrived.notify_all()
            await self._released.wait()
        return {pid: unit(pid) for pid in product_ids}

    async def until_waiting(self, callers: int) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.waiting >= callers), timeout=10)

    def release(self) -> None:
        self.hold = False
        self._released.set()


class HeldProfileReads(SqlInteractionLog):
    """The real store; while `hold` is set, a profile read waits after the database answered."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.hold = False
        self.read = asyncio.Event()
        self.released = asyncio.Event()

    async def load_profile(self, user_id: int, *, model_tag: str) -> np.ndarray | None:
        vector = await super().load_profile(user_id, model_tag=model_tag)
        if self.hold:
            self.read.set()
            await self.released.wait()
        return vector


class AnyProduct:
    async def exists(self, product_id: int) -> bool:
        return True


class World:
    def __init__(self, engine: Any, cache: Cache) -> None:
        self.engine = engine
        self.cache = cache
        self.store = HeldProfileReads(engine)
        self.vectors = HeldVectors()
        self.sessions = CacheSessionStore(cache, model_tag=lambda: MODEL)
        self.versions = CacheUserVersions(cache)
        self.profiles = Profiles(cache, self.store, self.vectors, model_tag=lambda: MODEL, ttl=600)
        self.feedback = FeedbackPipeline(
            products=AnyProduct(),
            interactions=self.store,
            vectors=self.vectors,
            sessions=self.sessions,
            versions=self.versions,
            refresh_profile=lambda user_id: None,  # recomputes are run by hand here
        )

    async def click(self, user_id: int, product_id: int) -> None:
        event = FeedbackRequest.model_validate(
            {"user_id": user_id, "product_id": product_id, "interaction_type": "click"}
        )
        await self.feedback.accept(event)

    async def history(self, user_id: int, *products: int) -> None:
        """Events stored for a user, with the session and profile they lead to."""
        for product_id in products:
            await self.click(user_id, product_id)
        assert await self.profiles.recompute(user_id) is not None

    async def profile_row(self, user_id: int) -> list[Any]:
        async with self.engine.connect() as conn:
            query = sa.select(user_profiles.c.user_id).where(user_profiles.c.user_id == user_id)
            return list((await conn.execute(query)).all())

    async def cached(self, user_id: int) -> dict[str, bytes | None]:
        client = self.cache.client
        return {
            "session": await client.get(cache_keys.session_embedding(model=MODEL, user_id=user_id)),
            "profile": await client.get(cache_keys.profile_embedding(model=MODEL, user_id=user_id)),
        }

    async def active(self, user_id: int) -> float | None:
        score = await self.cache.client.zscore(cache_keys.user_activity(), str(user_id))
        return None if score is None else float(score)

    async def assert_erased(self, user_id: int) -> None:
        assert await self.store.count(user_id=user_id) == 0
        assert await self.profile_row(user_id) == []
        assert await self.cached(user_id) == {"session": None, "profile": None}
        assert await self.active(user_id) is None


@pytest.fixture(params=["postgresql+redis", "sqlite+in-process"])
async def world(
    request: pytest.FixtureRequest, postgres_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[World]:
    real = request.param == "postgresql+redis"
    url = postgres_url if real else request.getfixturevalue("sqlite_url")
    engine = create_engine(Settings(DATABASE_URL=url, VITRINE_DATA_DIR=tmp_path))
    # A generous timeout: a busy test machine must not open the cache's breaker and skip writes by itself.
    cache = Cache.connect(redis_url if real else None, timeout_s=2.0)
    yield World(engine, cache)
    await cache.close()
    await engine.dispose()


async def test_a_profile_recompute_that_read_before_an_erase_does_not_write_after_it(world: World) -> None:
    shopper, other = next(_users), next(_users)
    await world.history(shopper, 1, 2, 3)
    await world.history(other, 4, 5)
    await world.click(other, 6)  # the other shopper's profile has something new to take in

    world.vectors.hold = True  # both recomputes have read their events and wait for product vectors
    recomputes = [asyncio.create_task(world.profiles.recompute(user)) for user in (shopper, other)]
    await world.vectors.until_waiting(2)
    erased = await privacy.erase_user(world.engine, world.cache, shopper)
    assert erased["erased"]["interactions"] == 3 and erased["erased"]["profiles"] == 1
    world.vectors.release()
    await asyncio.gather(*recomputes)

    await world.assert_erased(shopper)
    # The other shopper's recompute wrote as usual, from all six of their events' products.
    assert await world.profile_row(other) != []
    assert (await world.cached(other))["profile"] is not None
    profile = await world.store.load_profile(other, model_tag=MODEL)
    assert profile is not None and np.count_nonzero(profile) == 3


async def test_feedback_stored_before_an_erase_does_not_write_the_session_after_it(world: World) -> None:
    shopper, other = next(_users), next(_users)
    await world.history(shopper, 1, 2)
    await world.history(other, 3)

    world.vectors.hold = True  # each event is stored and waits for its product's vector
    events = [asyncio.create_task(world.click(user, 7)) for user in (shopper, other)]
    await world.vectors.until_waiting(2)
    erased = await privacy.erase_user(world.engine, world.cache, shopper)
    assert erased["erased"]["interactions"] == 3  # the held event was stored: it is erased with the rest
    world.vectors.release()
    await asyncio.gather(*events)

    await world.assert_erased(shopper)
    assert (await world.cached(other))["session"] is not None
    assert await world.store.count(user_id=other) == 2
    assert await world.active(other) == 2.0


async def test_a_profile_read_before_an_erase_is_not_cached_after_it(world: World) -> None:
    shopper = next(_users)
    await world.history(shopper, 1, 2)
    await world.cache.client.delete(cache_keys.profile_embedding(model=MODEL, user_id=shopper))

    world.store.hold = True  # a recommendation request misses the cache and has read the profile row
    reading = asyncio.create_task(world.profiles.long_term(shopper))
    await asyncio.wait_for(world.store.read.wait(), timeout=10)
    await privacy.erase_user(world.engine, world.cache, shopper)
    world.store.released.set()
    await reading

    await world.assert_erased(shopper)


async def test_feedback_after_an_erase_is_a_new_history(world: World) -> None:
    shopper = next(_users)
    await world.history(shopper, 1, 2)
    await privacy.erase_user(world.engine, world.cache, shopper)

    await world.history(shopper, 5)
    assert await world.store.count(user_id=shopper) == 1
    cached = await world.cached(shopper)
    assert cached["session"] is not None and cached["profile"] is not None
    profile = await world.store.load_profile(shopper, model_tag=MODEL)
    assert profile is not None and np.flatnonzero(profile).tolist() == [5]
    assert await world.active(shopper) == 1.0


async def test_an_erase_in_progress_makes_a_profile_write_wait_and_then_refuses_it(
    postgres_url: str, tmp_path: Path
) -> None:
    """The database's own race: a profile write that reaches PostgreSQL while the erase's transaction is open."""
    engine = create_engine(Settings(DATABASE_URL=postgres_url, VITRINE_DATA_DIR=tmp_path))
    store = SqlInteractionLog(engine)
    shopper = next(_users)
    event = FeedbackRequest.model_validate({"user_id": shopper, "product_id": 1, "interaction_type": "click"})
    row, _ = await store.record(event, occurred_at=datetime.now(UTC))
    try:
        async with engine.begin() as erase:
            await privacy.erase_rows(erase, shopper)  # deleted, not yet committed
            write = asyncio.create_task(
                store.save_profile(shopper, unit(1), model_tag=MODEL, interactions=1, computed_from=int(row["id"]))
            )
            await asyncio.sleep(0.5)
            assert not write.done(), "the profile write should wait for the erase's transaction"
        assert await write is False
        async with engine.connect() as conn:
            query = sa.select(user_profiles.c.user_id).where(user_profiles.c.user_id == shopper)
            assert (await conn.execute(query)).all() == []
    finally:
        await engine.dispose()


async def test_recommendations_cached_under_a_version_read_before_an_erase_are_never_read_again(world: World) -> None:
    """A recommendation request keys its answer by the user's version, read before it reads the profile: an
    answer computed before the erase and cached after it must sit under a version that never comes back."""
    shopper = next(_users)
    await world.history(shopper, 1, 2)
    before = await world.versions.current(shopper)  # an answer in flight is cached under this one
    await privacy.erase_user(world.engine, world.cache, shopper)
    for product_id in range(3, 3 + before + 1):  # the shopper comes back and is as active again
        assert await world.versions.current(shopper) != before
        await world.click(shopper, product_id)
    assert await world.versions.current(shopper) != before
