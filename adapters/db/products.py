"""The products repository: feed upserts, catalog scans for the index, and the enrichment query.

Upserts compare `content_hash` first and write only new or changed rows, so importing the same feed twice
changes nothing (not even `updated_at`). Reads that serve requests are one statement, one round trip.
Every function works on PostgreSQL and on SQLite; the two differ only where noted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from adapters.db.keyword_search import SEARCH_INDEX
from adapters.db.tables import products, utc_now
from domain.catalog_feed import FIELD_NAMES, ProductRecord, RowRejection

Executor = AsyncConnection | AsyncSession

# The enrichment columns, in the seed's order; the image is whichever of the three the feed filled in.
ENRICHMENT_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    products.c.id,
    products.c.product_name,
    products.c.description,
    products.c.search_price,
    products.c.currency,
    sa.func.coalesce(products.c.merchant_image_url, products.c.aw_image_url, products.c.large_image).label(
        "image_url"
    ),
    products.c.merchant_id,
    products.c.merchant_name,
    products.c.brand_name,
    products.c.brand_id,
    products.c.in_stock,
    products.c.stock_quantity,
    products.c.category_id,
    products.c.category_name,
    products.c.aw_deep_link,
    products.c.rrp_price,
    products.c.colour,
    products.c.fashion_category,
    products.c.fashion_size,
    products.c.quality_score,
    products.c.average_rating,
    products.c.reviews,
)
_RECORD_COLUMNS = tuple(products.c[name] for name in FIELD_NAMES)
# Rejections kept in an ImportReport; past this only the count grows, so a feed in the wrong format
# (every row rejected) cannot fill memory.
MAX_KEPT_REJECTIONS = 1000
_LOOKUP_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(slots=True)
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowRejection] = field(default_factory=list)  # the first MAX_KEPT_REJECTIONS
    rejected_count: int = 0

    @property
    def processed(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.rejected_count

    def add(self, counts: UpsertCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged

    def reject(self, rejection: RowRejection) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_KEPT_REJECTIONS:
            self.rejected.append(rejection)


# --- writing ------------------------------------------------------------------------------------------------


async def upsert_products(conn_or_session: Executor, records: Sequence[ProductRecord]) -> UpsertCounts:
    """Insert new products, rewrite changed ones, leave identical ones alone.

    Runs inside the caller's transaction (commit is the caller's), so a batch is written whole or not at all.
    Ids must be unique within `records`; `import_feed` guarantees that.
    """
    if not records:
        return UpsertCounts()
    hashes = {record.id: record.content_hash() for record in records}
    if len(hashes) != len(records):
        raise ValueError("upsert_products: duplicate product ids in one batch")

    stored: dict[int, str | None] = {}
    ids = list(hashes)
    # In chunks: SQLite binds one parameter per id in IN (...) and allows 32,766 per statement.
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        existing = await conn_or_session.execute(
            sa.select(products.c.id, products.c.content_hash).where(
                _id_in(conn_or_session, ids[start : start + _LOOKUP_CHUNK])
            )
        )
        stored.update((row.id, row.content_hash) for row in existing)
    now = utc_now()
    to_write = [
        {**_record_values(record), "content_hash": hashes[record.id], "created_at": now, "updated_at": now}
        for record in records
        if stored.get(record.id, "absent") != hashes[record.id]
    ]
    if to_write:
        await conn_or_session.execute(_upsert_statement(conn_or_session), to_write)
    inserted = sum(1 for record in records if record.id not in stored)
    return UpsertCounts(
        inserted=inserted, updated=len(to_write) - inserted, unchanged=len(records) - len(to_write)
    )


def _upsert_statement(conn_or_session: Executor) -> Any:
    # INSERT .. ON CONFLICT rather than a plain INSERT, so a product that another import wrote between our
    # hash read and this write is updated instead of failing the batch; the WHERE keeps identical rows (and
    # their updated_at) untouched even then. created_at is never overwritten.
    insert = postgresql.insert if _dialect(conn_or_session) == "postgresql" else sqlite.insert
    statement = insert(products)
    excluded = statement.excluded
    changes = {name: excluded[name] for name in (*FIELD_NAMES, "content_hash", "updated_at") if name != "id"}
    return statement.on_conflict_do_update(
        index_elements=[products.c.id],
        set_=changes,
        where=products.c.content_hash.is_distinct_from(excluded.content_hash),
    )


async def import_feed(
    engine: AsyncEngine,
    rows: Iterable[ProductRecord | RowRejection],
    *,
    batch_size: int = 1000,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Upsert a stream of feed rows in batches of `batch_size`, one transaction per batch.

    A product id seen twice in the feed is applied in feed order (the batch is cut before the repeat), so
    the later row wins and the counts add up: inserted + updated + unchanged = accepted rows.
    `on_progress` is called after every batch with the running report.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ImportReport()
    batch: dict[int, ProductRecord] = {}

    async def flush() -> None:
        if batch:
            async with engine.begin() as connection:
                report.add(await upsert_products(connection, list(batch.values())))
            batch.clear()
        if on_progress is not None:
            on_progress(report)

    for row in rows:
        if isinstance(row, RowRejection):
            report.reject(row)
            continue
        if row.id in batch:
            await flush()
        batch[row.id] = row
        if len(batch) >= batch_size:
            await flush()
    await flush()
    if report.inserted or report.updated:
        await settle_search_index(engine)
    return report


async def settle_search_index(engine: AsyncEngine) -> None:
    """After a bulk write on PostgreSQL: fold the GIN pending list into the index and refresh statistics.

    GIN takes new entries into a pending list that every search scans linearly until autovacuum merges it;
    after importing 100k products, a keyword search for a common word took ~3x longer until it did, and the
    planner, with stale statistics, also ANDed a bitmap of every active product into each search.
    """
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SEARCH_INDEX}
        )
        await connection.execute(sa.text("ANALYZE products"))


async def set_active(engine: AsyncEngine, product_id: int, active: bool) -> bool:
    """Show or hide one product; False when there is no such product.

    The content hash is recomputed so it keeps describing the row: re-importing a feed that still lists a
    hidden product then counts as a change and shows it again (the feed is the catalog's source of truth).
    """
    async with engine.begin() as connection:
        row = (
            await connection.execute(sa.select(*_RECORD_COLUMNS).where(products.c.id == product_id))
        ).one_or_none()
        if row is None:
            return False
        record = _record_from_row(row._mapping)
        if record.is_active == active:
            return True
        changed = ProductRecord(**{**_record_values(record), "is_active": active})
        await connection.execute(
            sa.update(products)
            .where(products.c.id == product_id)
            .values(is_active=active, content_hash=changed.content_hash(), updated_at=utc_now())
        )
    return True


# --- reading ------------------------------------------------------------------------------------------------


async def fetch_products(engine: AsyncEngine, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The enrichment query: active products among `ids`, by id, as plain dicts with float prices."""
    wanted = list(dict.fromkeys(int(product_id) for product_id in ids))
    if not wanted:
        return {}
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(*ENRICHMENT_COLUMNS).where(products.c.is_active, _id_in(connection, wanted))
        )
        rows = result.mappings().all()
    return {row["id"]: _plain(row) for row in rows}


async def product_exists(engine: AsyncEngine, product_id: int, *, active_only: bool = True) -> bool:
    condition = products.c.id == product_id
    if active_only:
        condition = condition & products.c.is_active
    async with engine.connect() as connection:
        found = await connection.scalar(sa.select(sa.literal(1)).where(condition).limit(1))
    return found is not None


async def count_active_products(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            sa.select(sa.func.count()).select_from(products).where(products.c.is_active)
        )
    return int(count or 0)


async def iter_active_products(
    engine: AsyncEngine, *, batch_size: int = 512
) -> AsyncIterator[list[ProductRecord]]:
    """Every active product, in id order, `batch_size` at a time.

    Keyset pagination (id > last seen) keeps each page an index range scan however deep the scan goes, and
    each page uses its own short connection, so a slow consumer (an encoder) holds no connection meanwhile.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    last_id: int | None = None
    while True:
        query = (
            sa.select(*_RECORD_COLUMNS).where(products.c.is_active).order_by(products.c.id).limit(batch_size)
        )
        if last_id is not None:
            query = query.where(products.c.id > last_id)
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        if not rows:
            return
        page = [_record_from_row(row._mapping) for row in rows]
        yield page
        if len(page) < batch_size:
            return
        last_id = page[-1].id


async def best_products(engine: AsyncEngine, *, limit: int) -> list[int]:
    """The catalog's best, for cold start: active and in stock, by quality, rating, review count, then id."""
    query = (
        sa.select(products.c.id)
        .where(products.c.is_active, products.c.in_stock)
        .order_by(
            # NULLS LAST spelled out: PostgreSQL sorts NULL first in descending order, SQLite last.
            products.c.quality_score.desc().nulls_last(),
            products.c.average_rating.desc().nulls_last(),
            products.c.reviews.desc().nulls_last(),
            products.c.id,
        )
        .limit(limit)
    )
    async with engine.connect() as connection:
        return list((await connection.scalars(query)).all())


# --- helpers ------------------------------------------------------------------------------------------------


def _dialect(conn_or_session: Executor) -> str:
    if isinstance(conn_or_session, AsyncSession):
        return conn_or_session.get_bind().dialect.name
    return conn_or_session.dialect.name


def _id_in(conn_or_session: Executor, ids: list[int]) -> sa.ColumnElement[bool]:
    if _dialect(conn_or_session) == "postgresql":
        # One bound array: one prepared statement whatever the number of ids, where IN would make a new one
        # for every list length.
        return products.c.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.BigInteger)))
    return products.c.id.in_(ids)


def _record_values(record: ProductRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FIELD_NAMES}


def _record_from_row(row: Any) -> ProductRecord:
    return ProductRecord(**{name: row[name] for name in FIELD_NAMES})


def _plain(row: Any) -> dict[str, Any]:
    return {key: float(value) if isinstance(value, Decimal) else value for key, value in row.items()}
