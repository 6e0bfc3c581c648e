"""The durable interaction log and profiles on the real PostgreSQL and the embedded SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from adapters.db.engine import create_engine
from adapters.db.interactions import SqlInteractionLog
from domain.api_models import FeedbackRequest
from domain.errors import DependencyDown
from domain.interactions import InteractionType
from domain.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
async def log(request, postgres_url, tmp_path):
    url = postgres_url if request.param == "postgresql" else request.getfixturevalue("sqlite_url")
    engine = create_engine(Settings(DATABASE_URL=url, VITRINE_DATA_DIR=tmp_path))
    yield SqlInteractionLog(engine)
    await engine.dispose()


def event(user_id: int, **fields) -> FeedbackRequest:
    return FeedbackRequest.model_validate({"user_id": user_id, "product_id": 11, "interaction_type": "click", **fields})


async def test_an_event_id_is_stored_once_and_replays_the_first_row(log):
    user = 70_001
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    first, created = await log.record(event(user, event_id=f"e-{user}"), occurred_at=at)
    again, created_again = await log.record(event(user, event_id=f"e-{user}", product_id=99), occurred_at=at)
    assert (created, created_again) == (True, False)
    assert again == first and again["product_id"] == 11
    assert await log.count(user_id=user) == 1


async def test_concurrent_retries_of_one_event_store_it_once(log):
    user = 70_002
    now = datetime.now(UTC)
    results = await asyncio.gather(
        *(log.record(event(user, event_id=f"race-{user}"), occurred_at=now) for _ in range(8))
    )
    assert sum(created for _, created in results) == 1
    assert len({row["id"] for row, _ in results}) == 1
    assert await log.count(user_id=user) == 1


async def test_history_queries(log):
    user = 70_003
    base = datetime.now(UTC) - timedelta(hours=1)
    for minute, (product, kind) in enumerate([(1, "view"), (2, "purchase"), (3, "click"), (2, "purchase")]):
        await log.record(
            event(user, product_id=product, interaction_type=kind), occurred_at=base + timedelta(minutes=minute)
        )
    await log.record(event(user, product_id=4, interaction_type="rating", rating=2), occurred_at=base)
    assert await log.purchased(user) == {2}
    recent = await log.recent_for_user(user, limit=3)
    assert [e.product_id for e in recent] == [2, 3, 2]
    assert recent[0].interaction_type is InteractionType.PURCHASE
    everyone = await log.recent_everyone(since=base - timedelta(minutes=1), limit=100)
    assert {e.product_id for e in everyone} >= {1, 2, 3, 4}
    assert any(e.rating == 2 for e in everyone)


async def test_profiles_round_trip_and_are_model_specific(log):
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    row, _ = await log.record(event(70_004), occurred_at=datetime.now(UTC))
    assert await log.save_profile(70_004, vector, model_tag="m:1", interactions=3, computed_from=row["id"])
    assert await log.save_profile(70_004, vector * 2, model_tag="m:1", interactions=4, computed_from=row["id"])
    assert np.allclose(await log.load_profile(70_004, model_tag="m:1"), vector * 2)  # an upsert
    assert await log.load_profile(70_004, model_tag="m:2") is None
    assert await log.load_profile(70_005, model_tag="m:1") is None


async def test_a_profile_is_saved_only_while_the_event_it_came_from_is_stored(log):
    user, other = 70_006, 70_007
    first, _ = await log.record(event(user), occurred_at=datetime.now(UTC) - timedelta(minutes=1))
    newest, _ = await log.record(event(user, product_id=12), occurred_at=datetime.now(UTC))
    theirs, _ = await log.record(event(other), occurred_at=datetime.now(UTC))
    events, newest_id = await log.history_for_profile(user, limit=10)
    assert [e.product_id for e in events] == [12, 11] and newest_id == newest["id"] > first["id"]
    assert await log.history_for_profile(70_008, limit=10) == ([], None)

    vector = np.ones(4, dtype=np.float32)
    assert not await log.save_profile(user, vector, model_tag="m:1", interactions=2, computed_from=theirs["id"])
    assert not await log.save_profile(user, vector, model_tag="m:1", interactions=2, computed_from=10**12)
    assert await log.load_profile(user, model_tag="m:1") is None


async def test_an_unreachable_database_is_dependency_down(tmp_path):
    engine = create_engine(
        Settings(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none", VITRINE_DATA_DIR=tmp_path)
    )
    try:
        with pytest.raises(DependencyDown) as caught:
            await SqlInteractionLog(engine).record(event(1), occurred_at=datetime.now(UTC))
        assert caught.value.dependency == "database"
    finally:
        await engine.dispose()
