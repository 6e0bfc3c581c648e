"""The keyword leg (adapters/db/keyword_search.py, migration 0002) on real PostgreSQL and SQLite.

Read-only tests share one database per backend, loaded once with the real fashion feed; tests that change
products get an empty database of their own (`empty_postgres_url`, `sqlite_url`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db import migrate
from adapters.db import products as repo
from adapters.db.engine import create_engine
from adapters.db.keyword_search import KeywordTuning, SqlKeywordSearch, is_keyword_index_object
from adapters.db.tables import metadata, products
from domain.catalog_feed import FIELD_NAMES, ProductRecord, read_feed
from domain.filters import SearchFilters
from domain.lexical import KeywordQuery, TermGroup
from domain.query_understanding import understand
from domain.settings import Settings
from tests import filter_cases

pytestmark = pytest.mark.integration

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def loaded_urls(tmp_path_factory: pytest.TempPathFactory, fashion_feed: Path) -> Iterator[dict[str, str]]:
    """One database per backend with the fashion feed imported, for the read-only tests of this module."""
    name = f"vitrine_test_kw_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    postgres = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    urls = {
        "postgresql": postgres.render_as_string(hide_password=False),
        "sqlite": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('keyword') / 'vitrine.db'}",
    }
    try:
        for url in urls.values():
            migrate.upgrade(url)
            asyncio.run(_import(url, fashion_feed))
        yield urls
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _import(url: str, feed: Path) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        await repo.import_feed(engine, read_feed(feed))
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def keywords(request: pytest.FixtureRequest, loaded_urls: dict[str, str]) -> AsyncIterator[SqlKeywordSearch]:
    engine = create_engine(Settings(database_url=loaded_urls[request.param]))
    try:
        yield SqlKeywordSearch(engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("empty_postgres_url" if request.param == "postgresql" else "sqlite_url")
    return url


async def names(keywords: SqlKeywordSearch, ids: list[int]) -> dict[int, dict[str, Any]]:
    engine: AsyncEngine = keywords._engine
    return await repo.fetch_products(engine, ids)


async def search(keywords: SqlKeywordSearch, text: str, k: int = 50, filters: SearchFilters | None = None) -> Any:
    understood = understand(text, await keywords.vocabulary())
    return await keywords.search(understood.keyword, k=k, filters=filters)


# --- searching ----------------------------------------------------------------------------------------------


async def test_a_misspelt_jacket_finds_the_jackets(keywords: SqlKeywordSearch) -> None:
    hits = await search(keywords, "jakcet")
    rows = await names(keywords, hits.ids)
    assert hits.total == 11 and len(hits.ids) == 11
    assert all("jacket" in rows[pid]["product_name"].lower() for pid in hits.ids)


async def test_filters_are_applied_in_the_statement(keywords: SqlKeywordSearch) -> None:
    filters = SearchFilters(min_price=20, max_price=60, in_stock=True, brands=["Nike", "Puma"])
    hits = await search(keywords, "t-shirt", filters=filters, k=500)
    rows = await names(keywords, hits.ids)
    assert hits.ids and hits.total == len(hits.ids)
    for pid in hits.ids:
        row = rows[pid]
        assert 20 <= row["search_price"] <= 60 and row["in_stock"] is True
        assert row["brand_name"] in {"Nike", "Puma"} and row["category_name"] == "Tshirts"


async def test_total_counts_all_matches_not_just_k(keywords: SqlKeywordSearch) -> None:
    hits = await search(keywords, "tshirts", k=5)
    assert len(hits.ids) == 5 and hits.total == 565
    assert hits.scores == sorted(hits.scores, reverse=True)


async def test_postgres_scores_a_bounded_set_of_candidates(loaded_urls: dict[str, str]) -> None:
    """A common word on a large catalog must not score every match: at most `candidate_cap` a tier."""
    engine = create_engine(Settings(database_url=loaded_urls["postgresql"]))
    try:
        capped = SqlKeywordSearch(engine, tuning=KeywordTuning(candidate_cap=40))
        common = await search(capped, "tshirts", k=5)
        assert len(common.ids) == 5 and common.total == 40  # a lower bound once the cap is reached (565 match)
        # Products matching every group are candidates first, so the cap does not cost the best answers.
        red = await search(capped, "red t-shirt", k=20)
        rows = await names(capped, red.ids)
        assert [rows[pid]["colour"] for pid in red.ids] == ["Red"] * 20
        # Under the cap, nothing changes: every match, the exact total, the same order.
        rare, uncapped = await search(capped, "jakcet"), await search(SqlKeywordSearch(engine), "jakcet")
        assert (rare.ids, rare.total) == (uncapped.ids, uncapped.total) and rare.total == 11
    finally:
        await engine.dispose()


async def test_colour_ranks_without_admitting(keywords: SqlKeywordSearch) -> None:
    hits = await search(keywords, "red t-shirt", k=500)
    rows = await names(keywords, hits.ids)
    assert hits.total == 565  # every t-shirt, not every red product
    top = [rows[pid]["colour"] for pid in hits.ids[:20]]
    assert top == ["Red"] * 20


async def test_a_shirt_is_not_a_t_shirt(keywords: SqlKeywordSearch) -> None:
    hits = await search(keywords, "shirts", k=100)
    rows = await names(keywords, hits.ids)
    assert {rows[pid]["category_name"] for pid in hits.ids[:40]} == {"Shirts"}
    assert "Tshirts" not in {rows[pid]["category_name"] for pid in hits.ids}


async def test_inactive_products_are_not_found(empty_url: str, fashion_feed: Path) -> None:
    await _import(empty_url, fashion_feed)
    engine = create_engine(Settings(database_url=empty_url))
    try:
        keywords = SqlKeywordSearch(engine)
        first = await search(keywords, "jacket")
        await repo.set_active(engine, first.ids[0], False)
        again = await search(keywords, "jacket")
        assert first.ids[0] not in again.ids and again.total == first.total - 1
    finally:
        await engine.dispose()


async def test_both_backends_rank_alike(loaded_urls: dict[str, str]) -> None:
    queries = ["kicks for guys", "ladies' handbags", "navy blue t-shirt", "red dress", "flip flpos", "black heels"]
    tops: dict[str, list[list[int]]] = {}
    for backend, url in loaded_urls.items():
        engine = create_engine(Settings(database_url=url))
        try:
            keywords = SqlKeywordSearch(engine)
            tops[backend] = [sorted((await search(keywords, query, k=10)).ids) for query in queries]
        finally:
            await engine.dispose()
    agreement = [len(set(a) & set(b)) / 10 for a, b in zip(tops["postgresql"], tops["sqlite"], strict=True)]
    assert min(agreement) >= 0.8, dict(zip(queries, agreement, strict=True))


async def test_an_empty_query_costs_nothing(keywords: SqlKeywordSearch) -> None:
    hits = await keywords.search(KeywordQuery(), k=10, filters=None)
    assert hits.ids == [] and hits.total == 0


async def test_forms_are_matched_literally(keywords: SqlKeywordSearch) -> None:
    # Words that are operators in either query language are plain words here.
    query = KeywordQuery((TermGroup(("and", "or", "not", "near")),))
    hits = await keywords.search(query, k=5, filters=None)
    assert hits.total >= 0


# --- vocabulary ---------------------------------------------------------------------------------------------


async def test_vocabulary_comes_from_the_index(keywords: SqlKeywordSearch) -> None:
    vocabulary = await keywords.vocabulary()
    assert vocabulary.documents == 1099
    assert {"Black", "Navy Blue", "Red"} <= set(vocabulary.colours)
    assert vocabulary.words["tshirts"] >= 565 and "jacket" in vocabulary.words
    assert all(word.isalnum() and word == word.lower() for word in vocabulary.words)
    assert await keywords.vocabulary() is vocabulary  # cached



async def test_the_filter_table(empty_url: str) -> None:
    """The shared filter cases (tests/filter_cases.py), as the vector index and recommendations answer them."""
    engine = create_engine(Settings(database_url=empty_url))
    try:
        records = []
        for row in filter_cases.catalog():
            values: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
            values.update(row, currency="GBP", is_active=True)
            records.append(ProductRecord(**values))
        async with engine.begin() as connection:
            await repo.upsert_products(connection, records)
        keywords = SqlKeywordSearch(engine)
        query = KeywordQuery((TermGroup(("widget",)),))
        answered = {}
        for case in filter_cases.CASES:
            filters = None if case.filters is None else SearchFilters.model_validate(case.filters)
            hits = await keywords.search(query, k=100, filters=filters)
            answered[case.name] = (set(hits.ids), hits.total)
        assert answered == {case.name: (set(case.expected), len(case.expected)) for case in filter_cases.CASES}
    finally:
        await engine.dispose()


# --- keeping in sync ----------------------------------------------------------------------------------------


async def test_the_index_follows_inserts_updates_and_deletes(empty_url: str) -> None:
    engine = create_engine(Settings(database_url=empty_url))
    try:
        keywords = SqlKeywordSearch(engine)
        values: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
        values.update(id=40026645008, product_name="Zephyr Anorak", search_price=Decimal("59.00"))
        values.update(currency="GBP", in_stock=True, is_active=True)
        record = ProductRecord(**values)
        async with engine.begin() as connection:
            await repo.upsert_products(connection, [record])
        query = KeywordQuery((TermGroup(("zephyr",)),))
        assert (await keywords.search(query, k=5, filters=None)).ids == [40026645008]

        renamed = replace(record, product_name="Mistral Anorak")
        async with engine.begin() as connection:
            await repo.upsert_products(connection, [renamed])
        assert (await keywords.search(query, k=5, filters=None)).ids == []
        assert (await keywords.search(KeywordQuery((TermGroup(("mistral",)),)), k=5, filters=None)).ids

        async with engine.begin() as connection:
            await connection.execute(sa.delete(products).where(products.c.id == 40026645008))
        assert (await keywords.search(KeywordQuery((TermGroup(("anorak",)),)), k=5, filters=None)).ids == []
        assert (await keywords.refresh_vocabulary()).documents == 0
    finally:
        await engine.dispose()


def test_schema_comparison_skips_only_the_keyword_index(empty_url: str) -> None:
    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={"include_name": lambda name, type_, parents: not is_keyword_index_object(name, type_, parents)},
        )
        return list(compare_metadata(context, metadata))

    async def check() -> list[Any]:
        engine = create_engine(Settings(database_url=empty_url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(differences)
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == []
    migrate.downgrade(empty_url, "0001")  # without the keyword index, and without 0003's column
    (missing,) = asyncio.run(check())
    assert missing[0] == "add_column" and (missing[2], missing[3].name) == ("user_interactions", "search_query")
    migrate.upgrade(empty_url)
    assert asyncio.run(check()) == []
