"""The feedback pipeline's order of work and its promises (domain/feedback.py), against fakes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from domain.api_models import FeedbackRequest
from domain.errors import DependencyDown, NotFound
from domain.feedback import FeedbackPipeline
from domain.interactions import InteractionType
from domain.ports import SessionSnapshot
from domain.session import SessionState


class FakeErasures:
    """Erase generations by user; `erase` advances one, as an operator's erase does."""

    def __init__(self) -> None:
        self.generations: dict[int, int] = {}

    async def current(self, user_id: int) -> int | None:
        return self.generations.get(user_id, 0)

    def erase(self, user_id: int) -> None:
        self.generations[user_id] = self.generations.get(user_id, 0) + 1


class FakeLog:
    def __init__(self, *, down: bool = False, erasures: FakeErasures | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.down = down
        self.erasures = erasures  # when set, each event is erased right after it is stored

    async def record(self, event: FeedbackRequest, *, occurred_at: datetime) -> tuple[dict[str, Any], bool]:
        if self.down:
            raise DependencyDown("database", "connection refused")
        for row in self.rows:
            if event.event_id is not None and row["event_id"] == event.event_id:
                return row, False
        row = {
            "id": len(self.rows) + 1,
            "event_id": event.event_id,
            "user_id": event.user_id,
            "product_id": event.product_id,
            "interaction_type": event.interaction_type.value,
            "occurred_at": occurred_at,
        }
        self.rows.append(row)
        if self.erasures is not None:
            self.erasures.erase(event.user_id)
        return row, True


class FakeVersions:
    def __init__(self) -> None:
        self.bumps: list[int] = []
        self.generations: list[int | None] = []

    async def current(self, user_id: int) -> int:
        return self.bumps.count(user_id)

    async def bump(self, user_id: int, *, erase_generation: int | None) -> None:
        self.bumps.append(user_id)
        self.generations.append(erase_generation)


class FakeSessions:
    """Holds sessions like the real store, and moves the user's version on in the same write; a yield inside the
    update invites interleaving, like the network."""

    def __init__(self, erasures: FakeErasures, versions: FakeVersions) -> None:
        self.states: dict[int, SessionState] = {}
        self.lock = asyncio.Lock()
        self.erasures = erasures
        self.versions = versions
        self.generations: list[int | None] = []

    async def snapshot(self, user_id: int) -> SessionSnapshot:
        return SessionSnapshot(erase_generation=await self.erasures.current(user_id))

    async def apply(
        self,
        user_id: int,
        kind: InteractionType,
        vector: Any,
        *,
        weight: float,
        at: float,
        since: SessionSnapshot,
    ) -> bool:
        erase_generation = since.erase_generation
        self.generations.append(erase_generation)
        if erase_generation != await self.erasures.current(user_id):
            return True  # erased since: dropped, as the real store does (adapters/erasure.py)
        async with self.lock:  # the real store gets the same effect from its compare-and-set
            state = self.states.get(user_id, SessionState())
            await asyncio.sleep(0)
            self.states[user_id] = state.apply(kind, vector, weight=weight, at=at)
            await self.versions.bump(user_id, erase_generation=erase_generation)
        return True

    async def embedding(self, user_id: int, *, now: float) -> Any:
        state = self.states.get(user_id)
        return None if state is None else state.embedding(now)


class FakeProducts:
    async def exists(self, product_id: int) -> bool:
        return product_id < 100


class FakeVectors:
    async def vectors(self, product_ids: list[int]) -> dict[int, np.ndarray]:
        return {pid: np.eye(4, dtype=np.float32)[pid % 4] for pid in product_ids}


def make(log: FakeLog | None = None, erasures: FakeErasures | None = None):
    refreshed: list[int] = []
    erasures = erasures or FakeErasures()
    versions = FakeVersions()
    sessions = FakeSessions(erasures, versions)
    pipeline = FeedbackPipeline(
        products=FakeProducts(),
        interactions=log or FakeLog(),
        vectors=FakeVectors(),
        sessions=sessions,
        versions=versions,
        refresh_profile=refreshed.append,
    )
    return pipeline, sessions, versions, refreshed


def event(**fields: Any) -> FeedbackRequest:
    return FeedbackRequest.model_validate({"user_id": 7, "product_id": 1, "interaction_type": "click", **fields})


async def test_seed_example_is_stored_then_applied():
    pipeline, sessions, versions, refreshed = make()
    answer, replayed = await pipeline.accept(
        FeedbackRequest.model_validate(
            {"user_id": 123, "product_id": 45, "interaction_type": "click", "context": "search", "position": 2}
        )
    )
    assert (answer.status, answer.user_id, answer.product_id, replayed) == ("accepted", 123, 45, False)
    assert sessions.states[123].embedding(datetime.now().timestamp()) is not None
    assert versions.bumps == [123] and refreshed == [123]


async def test_a_retry_with_the_same_event_id_is_counted_once_and_answered_the_same():
    log = FakeLog()
    pipeline, _, versions, _ = make(log)
    first, _ = await pipeline.accept(event(event_id="abc"))
    again, replayed = await pipeline.accept(event(event_id="abc"))
    assert replayed is True and again == first
    assert len(log.rows) == 1 and versions.bumps == [7]


async def test_unknown_product_is_refused_naming_the_field():
    pipeline, *_ = make()
    with pytest.raises(NotFound) as caught:
        await pipeline.accept(event(product_id=555))
    assert caught.value.field == "product_id"


async def test_database_down_is_a_503_and_nothing_downstream_happens():
    pipeline, sessions, versions, refreshed = make(FakeLog(down=True))
    with pytest.raises(DependencyDown):
        await pipeline.accept(event())
    assert sessions.states == {} and versions.bumps == [] and refreshed == []


async def test_a_low_rating_is_stored_but_leaves_the_session_alone():
    log = FakeLog()
    pipeline, sessions, *_ = make(log)
    await pipeline.accept(event(interaction_type="rating", rating=1))
    assert len(log.rows) == 1 and 7 not in sessions.states


async def test_concurrent_events_for_one_user_are_all_applied():
    pipeline, sessions, *_ = make()
    await asyncio.gather(*(pipeline.accept(event(product_id=pid)) for pid in range(1, 5)))
    state = sessions.states[7]
    assert state.parts[InteractionType.CLICK].weight == pytest.approx(4 * 0.3, rel=1e-3)


async def test_the_erase_generation_is_read_before_the_event_is_stored():
    """An erase that lands just after the event is stored erases the event: the session write must carry the
    generation from before, so that the store drops it."""
    erasures = FakeErasures()
    pipeline, sessions, versions, refreshed = make(FakeLog(erasures=erasures), erasures)
    await pipeline.accept(event())
    assert 7 not in sessions.states and sessions.generations == [0]
    assert versions.bumps == []  # the counter moves with the session write, dropped with it
    assert refreshed == [7]  # the profile recompute reads the generation anew


async def test_an_event_that_leaves_the_session_alone_still_makes_cached_answers_stale():
    pipeline, sessions, versions, _ = make()
    await pipeline.accept(event(interaction_type="rating", rating=1))
    assert 7 not in sessions.states and versions.bumps == [7] and versions.generations == [0]


async def test_a_session_store_that_cannot_be_reached_still_leaves_the_version_to_its_own_write():
    pipeline, sessions, versions, _ = make()

    async def unreachable(*_: Any, **__: Any) -> bool:
        return False

    sessions.apply = unreachable  # type: ignore[method-assign]
    await pipeline.accept(event())
    assert versions.bumps == [7]


async def test_batch_reports_each_event_on_its_own():
    pipeline, *_ = make()
    result = await pipeline.accept_batch(
        [
            {"user_id": 1, "product_id": 2, "interaction_type": "view"},
            {"user_id": 1, "product_id": 2, "interaction_type": "teleport"},
            {"user_id": 1, "product_id": 999, "interaction_type": "view"},
            {"user_id": 1, "product_id": 3, "interaction_type": "rating"},
        ]
    )
    assert (result.accepted, result.rejected) == (1, 3)
    codes = [item.status_code for item in result.results]
    assert codes == [200, 400, 404, 400]
    assert result.results[1].error["field"] == "interaction_type"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"user_id": "abc"}, "user_id"), ({"user_id": -3}, "user_id"), ({"product_id": "x"}, "product_id"),
     ({"interaction_type": "rating"}, "rating"), ({"rating": 5}, "rating"), ({"context": "home"}, "context"),
     ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"), ({"extra": 1}, "extra"),
     ({"query": "black heels"}, "query"), ({"context": "feed", "query": "heels"}, "query"),
     ({"context": "search", "query": "   "}, "query"), ({"context": "search", "query": "x" * 513}, "query")],
)  # fmt: skip
def test_bad_events_name_the_field(fields, field):
    with pytest.raises(ValueError) as caught:
        event(**fields)
    assert field in str(caught.value)


def test_a_search_event_may_name_its_query():
    assert event(context="search", query="  Black Heels ", position=7).query == "Black Heels"
