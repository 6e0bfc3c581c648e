"""The keyword leg of search: full-text matching in the catalog database, one statement per query.

PostgreSQL matches against `products.search_document` (a generated tsvector, GIN-indexed), SQLite against
`products_fts` (FTS5, kept in sync by triggers); migration 0002 creates both, over the same four fields.

Scoring is the same on both backends, so a catalog ranks the same whichever database holds it: a product
scores, for every term group of the query (domain/lexical.py) and every field the group matches in, the
group's weight (which carries the group's BM25 IDF, set by domain/query_understanding.py) times the field's
weight. That is BM25F with term frequency saturated at one match per field and no length normalisation:
product texts are short, and a product saying 't-shirt' three times is no more a t-shirt than one saying it
once, while a product matching 'black', 't-shirt' and 'men' is a better answer than one matching 't-shirt'.
PostgreSQL restricts a match to a field with weight labels ('tshirt:A'), FTS5 with column filters.
Filters (price, stock, brand, category, merchant) and `is_active` are applied in the same statement, and
`count(*) OVER ()` gives the number of matches without a second query.

The vocabulary (every indexed word with its document count, and the catalog's colours) is read from the
full-text index itself (`ts_stat`, `fts5vocab`), cached in-process and refreshed in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.db.tables import products
from domain.errors import DependencyDown
from domain.filters import SearchFilters
from domain.lexical import KeywordHits, KeywordQuery, TermGroup, Vocabulary

log = logging.getLogger("vitrine.keyword_search")

FTS_TABLE = "products_fts"
FTS_COLUMNS = ("category", "attributes", "name", "text")  # migration 0002's fields, most telling first
PG_CLASSES = ("A", "B", "C", "D")  # the same fields as PostgreSQL weight classes
SEARCH_DOCUMENT = "search_document"
SEARCH_INDEX = "ix_products_search_document"
_WORD = re.compile(r"[a-z0-9]{1,40}")


def is_keyword_index_object(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Whether a schema object is one of migration 0002's full-text objects (not in tables.py).

    For Alembic's `include_name` hook, negated: schema comparisons should skip these.
    """
    if name is None:
        return False
    if type_ == "table":
        return name == FTS_TABLE or name.startswith(f"{FTS_TABLE}_")
    if type_ == "column":
        return name == SEARCH_DOCUMENT and parent_names.get("table_name") == "products"
    if type_ == "index":
        return name == SEARCH_INDEX
    return False


@dataclass(frozen=True)
class KeywordTuning:
    """How much a match in each field counts: category, attributes, name, text (migration 0002's order)."""

    field_weights: tuple[float, float, float, float] = (1.0, 1.0, 0.6, 0.3)


class SqlKeywordSearch:
    """`KeywordSearcher` (domain/lexical.py) over PostgreSQL full-text search or SQLite FTS5."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tuning: KeywordTuning = KeywordTuning(),
        vocabulary_ttl_s: float = 300.0,
    ) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self.tuning = tuning
        self._vocabulary_ttl_s = vocabulary_ttl_s
        self._vocabulary: Vocabulary | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    # --- search -------------------------------------------------------------------------------------------

    async def search(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> KeywordHits:
        if not query.admitting or k <= 0:
            return KeywordHits(ids=[], scores=[], total=0)
        build = self._postgres_statement if self._postgres else self._sqlite_statement
        try:
            async with self._engine.connect() as connection:
                rows = (await connection.execute(build(query, k=k, filters=filters))).all()
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc
        return KeywordHits(
            ids=[int(row.id) for row in rows],
            scores=[float(row.score) for row in rows],
            total=int(rows[0].total) if rows else 0,
        )

    def _postgres_statement(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> Any:
        document = sa.literal_column(f"products.{SEARCH_DOCUMENT}")
        admitting = query.admitting
        terms: list[sa.ColumnElement[Any]] = []
        matches = []
        params: dict[str, Any] = {}
        for g, group in enumerate(query.groups):
            if group in admitting:
                params[f"g{g}"] = _tsquery(group)
                matches.append(document.op("@@")(_to_tsquery(f"g{g}")))
            for f, (label, weight) in enumerate(zip(PG_CLASSES, self.tuning.field_weights, strict=True)):
                params[f"g{g}f{f}"] = _tsquery(group, label=label)
                terms.append(sa.case((document.op("@@")(_to_tsquery(f"g{g}f{f}")), group.weight * weight), else_=0.0))
        score = sum(terms[1:], terms[0])
        return (
            sa.select(products.c.id, score.label("score"), sa.func.count().over().label("total"))
            .where(sa.or_(*matches), *_filter_conditions(filters))
            .order_by(sa.desc("score"), products.c.id)
            .limit(k)
            .params(**params)
        )

    def _sqlite_statement(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> Any:
        admitting = query.admitting
        admits = " OR ".join(f"({_fts5_query(group)})" for group in admitting)
        parts = []
        params: dict[str, Any] = {}
        for g, group in enumerate(query.groups):
            for f, (column, weight) in enumerate(zip(FTS_COLUMNS, self.tuning.field_weights, strict=True)):
                match = f"{column} : ({_fts5_query(group)})"
                params[f"g{g}f{f}"] = match if group in admitting else f"({match}) AND ({admits})"
                params[f"w{g}f{f}"] = group.weight * weight
                parts.append(
                    f"SELECT rowid AS id, :w{g}f{f} AS score FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :g{g}f{f}"
                )
        matched = sa.text(" UNION ALL ".join(parts)).columns(sa.column("id"), sa.column("score")).subquery("m")
        score = sa.func.sum(matched.c.score)
        return (
            sa.select(matched.c.id, score.label("score"), sa.func.count().over().label("total"))
            .join(products, products.c.id == matched.c.id)
            .where(*_filter_conditions(filters))
            .group_by(matched.c.id)
            .order_by(sa.desc("score"), matched.c.id)
            .limit(k)
            .params(**params)
        )

    # --- vocabulary ---------------------------------------------------------------------------------------

    async def vocabulary(self) -> Vocabulary:
        """The cached vocabulary; a stale one is served while a fresh one is read in the background."""
        if self._vocabulary is None:
            async with self._lock:
                if self._vocabulary is None:
                    await self._load()
            assert self._vocabulary is not None
            return self._vocabulary
        stale = time.monotonic() - self._loaded_at > self._vocabulary_ttl_s
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._refresh_quietly(), name="vitrine-keyword-vocabulary")
        return self._vocabulary

    async def refresh_vocabulary(self) -> Vocabulary:
        async with self._lock:
            await self._load()
        assert self._vocabulary is not None
        return self._vocabulary

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_vocabulary()
        except Exception as exc:  # keep serving the old vocabulary; the next stale read tries again
            log.warning("keyword vocabulary refresh failed: %s", exc)

    async def _load(self) -> None:
        try:
            async with self._engine.connect() as connection:
                words = await (self._postgres_words(connection) if self._postgres else self._sqlite_words(connection))
                colour_rows = (
                    await connection.execute(
                        sa.select(products.c.colour)
                        .where(products.c.is_active, products.c.colour.is_not(None))
                        .group_by(products.c.colour)
                    )
                ).all()
                documents = await connection.scalar(
                    sa.select(sa.func.count()).select_from(products).where(products.c.is_active)
                )
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc
        colours = sorted({str(row.colour).strip() for row in colour_rows if str(row.colour).strip()})
        self._vocabulary = Vocabulary(words=words, colours=tuple(colours), documents=int(documents or 0))
        self._loaded_at = time.monotonic()

    @staticmethod
    async def _postgres_words(connection: AsyncConnection) -> dict[str, int]:
        rows = await connection.execute(
            sa.text(f"SELECT word, ndoc FROM ts_stat('SELECT {SEARCH_DOCUMENT} FROM products WHERE is_active')")
        )
        return {row.word: int(row.ndoc) for row in rows if _WORD.fullmatch(row.word)}

    @staticmethod
    async def _sqlite_words(connection: AsyncConnection) -> dict[str, int]:
        # fts5vocab reads the index's own term list; a temp table, so it exists per connection only.
        await connection.execute(
            sa.text(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{FTS_TABLE}_vocab USING fts5vocab(main, {FTS_TABLE}, row)"
            )
        )
        rows = await connection.execute(sa.text(f"SELECT term, doc FROM temp.{FTS_TABLE}_vocab"))
        return {row.term: int(row.doc) for row in rows if _WORD.fullmatch(row.term)}


# --- helpers ------------------------------------------------------------------------------------------------


def _to_tsquery(name: str) -> sa.ColumnElement[Any]:
    return sa.func.to_tsquery(sa.literal_column("'simple'::regconfig"), sa.bindparam(name, type_=sa.Text))


def _tsquery(group: TermGroup, *, label: str = "") -> str:
    """'(tshirts:A | (t:A <-> shirt:A))': forms are [a-z0-9 ] only (TermGroup checks), nothing to escape.

    With a `label`, only words in that weight class (field) match.
    """
    suffix = f":{label}" if label else ""

    def phrase(form: str) -> str:
        return "(" + " <-> ".join(word + suffix for word in form.split()) + ")"

    query = "(" + " | ".join(phrase(form) for form in group.forms) + ")"
    return " & ".join([query, *(f"!{phrase(form)}" for form in group.excludes)])


def _fts5_query(group: TermGroup) -> str:
    query = " OR ".join(f'"{form}"' for form in group.forms)
    if group.excludes:
        query = f"({query}) NOT ({' OR '.join(f'{chr(34)}{form}{chr(34)}' for form in group.excludes)})"
    return query


def _filter_conditions(filters: SearchFilters | None) -> Sequence[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [products.c.is_active]
    if filters is None:
        return conditions
    if filters.min_price is not None:
        conditions.append(products.c.search_price >= filters.min_price)
    if filters.max_price is not None:
        conditions.append(products.c.search_price <= filters.max_price)
    if filters.in_stock is not None:
        conditions.append(products.c.in_stock == filters.in_stock)
    if filters.brands is not None:
        conditions.append(products.c.brand_name.in_(filters.brands))
    if filters.categories is not None:
        conditions.append(products.c.category_name.in_(filters.categories))
    if filters.merchants is not None:
        conditions.append(products.c.merchant_name.in_(filters.merchants))
    return conditions
