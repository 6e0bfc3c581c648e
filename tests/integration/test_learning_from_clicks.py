"""Learning from the shop on the real databases: a simulated click log moves the truly relevant products up.

The fashion feed in PostgreSQL (and the embedded SQLite), the real keyword leg, the real interaction log (the
feedback's `query`, migration 0003) and the real learned table (adapters/learned_ranking.py); the vector leg is a
seeded fake, so the ranking before any feedback is fixed and the test is about what the clicks change.

The simulated shoppers know the truth (`TRUE_RELEVANCE`) and see the cold first page; each looks at rank r with
probability 1 / r (the examination model's position bias) and clicks what they look at with probability its
relevance, and sometimes puts it in the bag. So the cold top product gets clicks because it is on top, and the
relevant ones further down get fewer than they deserve: the click model has to correct for it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import privacy
from adapters.db import products as repo
from adapters.db.engine import create_engine
from adapters.db.interactions import SqlInteractionLog
from adapters.db.keyword_search import SqlKeywordSearch
from adapters.learned_ranking import ShopLearning
from domain.api_models import FeedbackRequest, SearchRequest
from domain.catalog_feed import ProductRecord, read_feed
from domain.search import SearchPipeline
from domain.settings import Settings
from tests.unit.fakes import FakeCache, FakeEncoder, FakeIndex

pytestmark = pytest.mark.integration

QUERY = "black tshirt for men"
COLD_QUERY = "blue jeans"
PAGE = 20


class Catalog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def fetch(self, ids: Any) -> dict[int, dict[str, Any]]:
        return await repo.fetch_products(self.engine, ids)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("empty_postgres_url" if request.param == "postgresql" else "sqlite_url")
    return url


@pytest.fixture
async def shop(database_url: str, fashion_feed: Path) -> AsyncIterator[dict[str, Any]]:
    url = database_url
    engine = create_engine(Settings(database_url=url))
    await repo.import_feed(engine, read_feed(fashion_feed))
    records = [row for row in read_feed(fashion_feed) if isinstance(row, ProductRecord)]
    rows = await repo.fetch_products(engine, [record.id for record in records])
    encoder = FakeEncoder(dim=16)
    vectors = {pid: await encoder.encode_text(f"product {pid}") for pid in rows}
    index = FakeIndex(vectors, rows)
    learning = ShopLearning(engine)
    pipeline = SearchPipeline(
        encoder=encoder,
        index=index,
        catalog=Catalog(engine),
        cache=FakeCache(),
        model_tag=lambda: "m",
        index_version=lambda: index.version,
        keywords=SqlKeywordSearch(engine),
        learned=learning,
        cache_enabled=False,
    )
    try:
        yield {"engine": engine, "pipeline": pipeline, "learning": learning, "log": SqlInteractionLog(engine)}
    finally:
        await learning.close()
        await pipeline.keywords.close()  # type: ignore[union-attr]
        await engine.dispose()


async def ranked(pipeline: SearchPipeline, query: str) -> list[int]:
    response = await pipeline.search(SearchRequest(query=query, limit=PAGE))
    return [result.product_id for result in response.results]


def simulated_click_log(page: list[int], relevance: dict[int, float], *, shoppers: int, seed: int) -> list[dict]:
    """What `shoppers` position-biased shoppers do with `page`: feedback events, as a storefront sends them."""
    rng = random.Random(seed)
    spellings = [QUERY, QUERY.title(), f"  {QUERY.upper()} "]  # as typed: the service normalises
    events = []
    for shopper in range(1, shoppers + 1):
        for position, product_id in enumerate(page):
            examined = rng.random() < 1.0 / (position + 1)
            if not examined or rng.random() >= relevance.get(product_id, 0.02):
                continue
            event = {
                "user_id": 500_000 + shopper,
                "product_id": product_id,
                "interaction_type": "click",
                "context": "search",
                "query": rng.choice(spellings),
                "position": position,
                "event_id": f"sim-{seed}-{shopper}-{product_id}",
            }
            events.append(event)
            if rng.random() < 0.3:
                events.append({**event, "interaction_type": "add_to_cart", "event_id": f"{event['event_id']}-cart"})
    return events


async def record(log: SqlInteractionLog, events: list[dict]) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    for raw in events:
        await log.record(FeedbackRequest.model_validate(raw), occurred_at=at)


async def test_a_simulated_click_log_moves_the_truly_relevant_products_up(shop: dict[str, Any]) -> None:
    pipeline, learning = shop["pipeline"], shop["learning"]
    cold = await ranked(pipeline, QUERY)
    cold_other = await ranked(pipeline, COLD_QUERY)
    assert len(cold) == PAGE
    relevant = [cold[9], cold[16]]  # what shoppers really want sits at ranks 10 and 17
    truth = {relevant[0]: 0.8, relevant[1]: 0.7, cold[0]: 0.1}  # the top product is seldom what they want

    clicks = simulated_click_log(cold, truth, shoppers=300, seed=14)
    await record(shop["log"], clicks)
    # Noise that must teach nothing: a search click without its query, and a query only two shoppers acted on.
    await record(
        shop["log"],
        [
            {"user_id": 9, "product_id": cold_other[-1], "interaction_type": "purchase", "context": "search"},
            *(
                {
                    "user_id": user,
                    "product_id": cold_other[-1],
                    "interaction_type": "purchase",
                    "context": "search",
                    "query": COLD_QUERY,
                    "position": 19,
                }
                for user in (10, 11)
            ),
        ],
    )
    table = await learning.refresh()
    assert set(table.queries) == {QUERY}
    # The top product is clicked more often than the one at rank 17, for being on top: corrected, it counts less.
    clicked = [event["product_id"] for event in clicks if event["interaction_type"] == "click"]
    assert clicked.count(cold[0]) > clicked.count(relevant[1])
    learned = table.queries[QUERY].attractiveness
    assert learned[cold[0]] < min(learned[pid] for pid in relevant)

    warm = await ranked(pipeline, QUERY)
    assert warm.index(relevant[0]) <= 1 and warm.index(relevant[1]) <= 3  # from ranks 10 and 17
    assert set(warm) == set(cold)  # re-ranked, nothing pulled in or dropped
    assert await ranked(pipeline, COLD_QUERY) == cold_other  # a query nothing was learned for: as before


async def test_erased_shoppers_stop_counting_at_the_next_refresh(shop: dict[str, Any]) -> None:
    pipeline, learning, engine = shop["pipeline"], shop["learning"], shop["engine"]
    cold = await ranked(pipeline, QUERY)
    events = simulated_click_log(cold, {cold[12]: 0.9}, shoppers=200, seed=3)
    await record(shop["log"], events)
    await learning.refresh()
    assert (await ranked(pipeline, QUERY)).index(cold[12]) <= 2  # from rank 13
    async with engine.begin() as connection:
        for user in {event["user_id"] for event in events}:
            await privacy.erase_rows(connection, user)
    assert (await learning.refresh()).queries == {}
    assert await ranked(pipeline, QUERY) == cold
