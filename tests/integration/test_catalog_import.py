"""The catalog through the real `vitrine` command, on real PostgreSQL and SQLite.

Every test runs on both backends, each on an empty database of its own. Tests are synchronous because the
commands call `asyncio.run` themselves; database checks go through `on_db`, which does the same.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from adapters.db import migrate
from adapters.db import products as repo
from adapters.db.engine import create_engine
from adapters.db.keyword_search import is_keyword_index_object
from adapters.db.tables import metadata, products
from cli import app
from domain.catalog_feed import ProductRecord, read_feed
from domain.demo_catalog import demo_products
from domain.settings import Settings

pytestmark = pytest.mark.integration

T = TypeVar("T")
FASHION_ROWS = 1099
ENRICHMENT_KEYS = [
    "id", "product_name", "description", "search_price", "currency", "image_url", "merchant_id",
    "merchant_name", "brand_name", "brand_id", "in_stock", "stock_quantity", "category_id", "category_name",
    "aw_deep_link", "rrp_price", "colour", "fashion_category", "fashion_size", "quality_score",
    "average_rating", "reviews",
]  # fmt: skip


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "empty_postgres_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


def vitrine(*args: str) -> str:
    """Run the real command in-process; fail with its output when it exits non-zero."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"vitrine {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def on_db(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(Settings(database_url=url))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def summary(output: str) -> str:
    match = re.search(r"^\d+ inserted, \d+ updated, \d+ unchanged, \d+ rejected$", output, re.MULTILINE)
    assert match, output
    return match.group(0)


async def stamps(engine: AsyncEngine) -> dict[int, tuple[Any, ...]]:
    query = sa.select(products.c.id, products.c.created_at, products.c.updated_at, products.c.content_hash)
    async with engine.connect() as connection:
        return {row.id: tuple(row[1:]) for row in await connection.execute(query)}


async def all_active(engine: AsyncEngine, batch_size: int = 512) -> list[ProductRecord]:
    return [
        record async for page in repo.iter_active_products(engine, batch_size=batch_size) for record in page
    ]


def write_feed(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- schema -------------------------------------------------------------------------------------------------


def test_migrations_create_exactly_the_tables(database_url: str) -> None:
    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={"include_name": lambda n, t, p: not is_keyword_index_object(n, t, p)},
        )
        return list(compare_metadata(context, metadata))

    async def check(engine: AsyncEngine) -> list[Any]:
        await migrate.require_schema(engine)
        async with engine.connect() as connection:
            return await connection.run_sync(differences)

    assert on_db(database_url, check) == []
    assert "revision 0003, head 0003 (up to date)" in vitrine("db", "current", "--database-url", database_url)
    # Upgrading again is a no-op; down to nothing and back works on both backends.
    vitrine("db", "upgrade", "--database-url", database_url)
    migrate.downgrade(database_url, "base")
    assert "revision none" in vitrine("db", "current", "--database-url", database_url)
    assert "is at revision 0003" in vitrine("db", "upgrade", "--database-url", database_url)
    assert on_db(database_url, check) == []


def test_commands_refuse_an_unmigrated_database(tmp_path: Path, lululemon_feed: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(app, ["catalog", "import", str(lululemon_feed), "--database-url", url])
    assert result.exit_code == 1
    assert "has no schema; run `vitrine db upgrade`" in result.output
    vitrine("db", "upgrade", "--database-url", url)
    assert summary(vitrine("catalog", "import", str(lululemon_feed), "--database-url", url)).startswith(
        "10 inserted"
    )


# --- feed import --------------------------------------------------------------------------------------------


def test_fashion_feed_imports_once_and_reimports_as_unchanged(database_url: str, fashion_feed: Path) -> None:
    first = vitrine("catalog", "import", str(fashion_feed), "--database-url", database_url)
    assert summary(first) == f"{FASHION_ROWS} inserted, 0 updated, 0 unchanged, 0 rejected"
    before = on_db(database_url, stamps)
    assert len(before) == FASHION_ROWS

    again = vitrine(
        "catalog", "import", str(fashion_feed), "--batch-size", "250", "--database-url", database_url
    )
    assert summary(again) == f"0 inserted, 0 updated, {FASHION_ROWS} unchanged, 0 rejected"
    assert on_db(database_url, stamps) == before  # not one updated_at moved

    # What comes back out is exactly what went in, so the stored hashes describe the stored rows.
    stored = on_db(database_url, lambda engine: all_active(engine, batch_size=400))
    parsed = sorted(
        (row for row in read_feed(fashion_feed) if isinstance(row, ProductRecord)), key=lambda r: r.id
    )
    assert stored == parsed
    assert {record.id: record.content_hash() for record in stored} == {i: s[2] for i, s in before.items()}


def test_changed_and_repeated_rows_are_updated(database_url: str, tmp_path: Path) -> None:
    rows = [
        {"aw_product_id": str(i), "product_name": f"Shirt {i}", "search_price": "10.00", "in_stock": "1"}
        for i in (1, 2, 3)
    ]
    feed = write_feed(tmp_path / "feed.csv", rows)
    vitrine("catalog", "import", str(feed), "--database-url", database_url)
    before = on_db(database_url, stamps)

    rows[1]["search_price"] = "12.50 GBP"
    rows.append({**rows[0], "product_name": "Shirt 1, renamed"})  # the same id later in the feed wins
    write_feed(feed, rows)
    output = vitrine("catalog", "import", str(feed), "--database-url", database_url)
    assert summary(output) == "0 inserted, 2 updated, 2 unchanged, 0 rejected"

    after = on_db(database_url, stamps)
    assert after[3] == before[3]
    for changed in (1, 2):
        assert after[changed][0] == before[changed][0]  # created_at kept
        assert after[changed][1] > before[changed][1]  # updated_at moved
    fetched = on_db(database_url, lambda engine: repo.fetch_products(engine, [1, 2]))
    assert fetched[1]["product_name"] == "Shirt 1, renamed"
    assert fetched[2]["search_price"] == 12.5


def test_bad_rows_are_reported_with_line_numbers(database_url: str, tmp_path: Path) -> None:
    feed = tmp_path / "bad.csv"
    feed.write_text(
        "aw_product_id,product_name,description,search_price,merchant_image_url\n"  # 1
        '10,Good Tee,"soft cotton,\nwith a quoted ""crew"" neck",19.99,images/10.jpg\n'  # 2-3
        ",No Id Tee,,19.99,\n"  # 4
        '11,,"empty name,\nspread over lines",19.99,\n'  # 5-6
        "12,Price Tee,,abc,\n"  # 7
        "13,Also Good,,£5,\n",  # 8
        encoding="utf-8",
    )
    output = vitrine("catalog", "import", str(feed), "--database-url", database_url)  # exit code 0
    assert summary(output) == "2 inserted, 0 updated, 0 unchanged, 3 rejected"
    for line, reason in [
        (4, "missing aw_product_id"),
        (5, "empty product_name"),
        (7, "unparsable search_price 'abc'"),
    ]:
        assert re.search(rf"^\W*{line}\W+{re.escape(reason)}", output, re.MULTILINE), output

    stored = on_db(database_url, lambda engine: repo.fetch_products(engine, [10, 11, 12, 13]))
    assert sorted(stored) == [10, 13]
    assert stored[10]["description"] == 'soft cotton,\nwith a quoted "crew" neck'
    assert stored[10]["image_url"] == str(tmp_path.resolve() / "images" / "10.jpg")


def test_lululemon_feed_through_the_installed_command(
    database_url: str, lululemon_feed: Path, tmp_path: Path
) -> None:
    # The console script, from a foreign working directory, configured by DATABASE_URL as in production.
    command = Path(sys.executable).with_name("vitrine")
    completed = subprocess.run(
        [str(command), "catalog", "import", str(lululemon_feed)],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert summary(completed.stdout) == "10 inserted, 0 updated, 0 unchanged, 0 rejected"

    with lululemon_feed.open(encoding="utf-8", newline="") as handle:
        source = {int(row["aw_product_id"]): row for row in csv.DictReader(handle)}
    stored = {record.id: record for record in on_db(database_url, all_active)}
    assert sorted(stored) == sorted(source)
    for product_id, row in source.items():
        record = stored[product_id]
        assert record.aw_image_url == row["image_url"]
        assert record.merchant_image_url == row["merchant_image_url"]
        assert record.product_name == row["product_name"]  # quotes and inches intact: 'Leggings 25"'
        assert record.fashion_suitable_for == row["Fashion:suitable_for"]
        assert record.fashion_size == row["Fashion:size"]
        assert (record.currency, record.category_id, record.merchant_id) == ("USD", 137, 30347)
        assert record.search_price == Decimal(row["search_price"])

    fetched = on_db(database_url, lambda engine: repo.fetch_products(engine, [40026645008]))
    assert fetched[40026645008]["image_url"] == source[40026645008]["merchant_image_url"]
    assert fetched[40026645008]["search_price"] == 98.0


def test_a_failing_batch_writes_nothing(database_url: str) -> None:
    good = next(demo_products(1, first_id=1))
    broken = replace(next(demo_products(1, first_id=2)), product_name=None)  # type: ignore[arg-type]

    async def attempt(engine: AsyncEngine) -> int:
        with pytest.raises(sa.exc.IntegrityError):
            await repo.import_feed(engine, [good, broken], batch_size=10)
        return await repo.count_active_products(engine)

    assert on_db(database_url, attempt) == 0


# --- reads --------------------------------------------------------------------------------------------------


def test_fetch_products_is_one_query_over_active_products(database_url: str, fashion_feed: Path) -> None:
    vitrine("catalog", "import", str(fashion_feed), "--database-url", database_url)
    statements: list[str] = []

    async def fetch(engine: AsyncEngine, ids: list[int]) -> dict[int, dict[str, Any]]:
        sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        return await repo.fetch_products(engine, ids)

    found = on_db(database_url, lambda engine: fetch(engine, [1164, 1163, 5, 1163]))
    assert sorted(found) == [1163, 1164]
    assert len(statements) == 1
    if database_url.startswith("postgresql"):
        assert "= ANY (" in statements[0]  # one bound array, one prepared statement for any number of ids
    product = found[1163]
    assert list(product) == ENRICHMENT_KEYS
    assert type(product["search_price"]) is float and type(product["rrp_price"]) is float
    assert product["search_price"] == 50.61
    assert Path(product["image_url"]).is_file()  # the feed's relative images/1163.jpg, made absolute
    assert on_db(database_url, lambda engine: repo.fetch_products(engine, [])) == {}

    # COALESCE(merchant_image_url, aw_image_url, large_image): the first one the feed filled in.
    base = next(demo_products(1, first_id=77))
    only_aw = replace(base, aw_image_url="https://cdn.example.com/aw.jpg", large_image="https://x/large.jpg")
    only_large = replace(base, id=78, large_image="https://cdn.example.com/large.jpg")

    async def upsert(engine: AsyncEngine) -> repo.UpsertCounts:
        async with engine.begin() as connection:
            return await repo.upsert_products(connection, [only_aw, only_large])

    assert on_db(database_url, upsert) == repo.UpsertCounts(inserted=2)
    images = on_db(database_url, lambda engine: repo.fetch_products(engine, [77, 78]))
    assert images[77]["image_url"] == "https://cdn.example.com/aw.jpg"
    assert images[78]["image_url"] == "https://cdn.example.com/large.jpg"


def test_inactive_products_are_hidden_until_the_feed_lists_them_again(
    database_url: str, fashion_feed: Path
) -> None:
    vitrine("catalog", "import", str(fashion_feed), "--database-url", database_url)

    async def hide(engine: AsyncEngine) -> tuple[Any, ...]:
        assert await repo.set_active(engine, 1163, False)
        assert not await repo.set_active(engine, 5, False)  # no such product
        return (
            await repo.fetch_products(engine, [1163, 1164]),
            await repo.product_exists(engine, 1163),
            await repo.product_exists(engine, 1163, active_only=False),
            await repo.product_exists(engine, 1164),
            await repo.count_active_products(engine),
            [record.id for record in await all_active(engine)],
        )

    fetched, exists, exists_hidden, other_exists, active, scanned = on_db(database_url, hide)
    assert sorted(fetched) == [1164]
    assert (exists, exists_hidden, other_exists) == (False, True, True)
    assert active == len(scanned) == FASHION_ROWS - 1 and 1163 not in scanned
    assert scanned == sorted(scanned)

    output = vitrine("catalog", "import", str(fashion_feed), "--database-url", database_url)
    assert summary(output) == f"0 inserted, 1 updated, {FASHION_ROWS - 1} unchanged, 0 rejected"
    assert on_db(database_url, lambda engine: repo.product_exists(engine, 1163))


def test_demo_catalog_is_deterministic_and_feeds_best_products(database_url: str) -> None:
    output = vitrine(
        "catalog", "demo", "--count", "300", "--batch-size", "128", "--database-url", database_url
    )
    assert summary(output) == "300 inserted, 0 updated, 0 unchanged, 0 rejected"
    again = vitrine("catalog", "demo", "--count", "300", "--database-url", database_url)
    assert summary(again) == "0 inserted, 0 updated, 300 unchanged, 0 rejected"

    expected = list(demo_products(300))
    assert on_db(database_url, all_active) == expected

    best = on_db(database_url, lambda engine: repo.best_products(engine, limit=10))
    ranked = sorted(
        (p for p in expected if p.in_stock),
        key=lambda p: (-(p.average_rating or -1), -(p.reviews if p.reviews is not None else -1), p.id),
    )
    assert best == [p.id for p in ranked[:10]]


def test_an_import_leaves_postgres_full_text_index_settled(empty_postgres_url: str, fashion_feed: Path) -> None:
    """GIN's pending list merged and statistics fresh: searches right after an import run at full speed."""

    async def index_state(engine: AsyncEngine) -> tuple[int, Any]:
        async with engine.connect() as connection:
            # With nothing pending, merging again moves no pages.
            pending = await connection.scalar(sa.text("SELECT gin_clean_pending_list('ix_products_search_document')"))
            analyzed = await connection.scalar(
                sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'products'")
            )
        return int(pending), analyzed

    vitrine("catalog", "import", str(fashion_feed), "--database-url", empty_postgres_url)
    pending, analyzed = on_db(empty_postgres_url, index_state)
    assert pending == 0 and analyzed is not None
