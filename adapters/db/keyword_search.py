"""The keyword leg of search: full-text matching in the catalog database, one statement per query.

PostgreSQL matches against `products.search_document` (a generated tsvector, GIN-indexed), SQLite against
`products_fts` (FTS5, kept in sync by triggers); migration 0002 creates both, over the same four fields.

Scoring is the same on both backends, so a catalog ranks the same whichever database holds it: a product
scores, for every term group of the query (domain/lexical.py) and every field the group matches in, the
group's weight (which carries the group's BM25 IDF, set by domain/query_understanding.py) times the field's
weight. That is BM25F with term frequency saturated at one match per field and no length normalisation:
product texts are short, and a product saying 't-shirt' three times is no more a t-shirt than one saying it
once, while a product matching 'black', 't-shirt' and 'men' is a better answer than one matching 't-shirt'.
Colour and audience groups (`attribute` groups) are matched and scored in the attributes field only: a
product is red when its colour says so, not when its description mentions red. PostgreSQL restricts a
match to a field with weight labels ('tshirt:A'), FTS5 with column filters.
Filters (price, stock, brand, category, merchant) and `is_active` are applied in the same statement, which
also returns the number of matches. On PostgreSQL a bounded set of candidates is scored (KeywordTuning's
`candidate_cap`), so a common word costs the same on 100k products as on 1k; the catalogs SQLite serves (the
embedded default) are small enough to score every match.

The vocabulary (every indexed word with its document count, and the catalog's colours) is read from the
full-text index itself (`ts_stat`, `fts5vocab`), cached in-process and refreshed in the background.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.background_load import BackgroundLoad
from adapters.db.failures import database_call
from adapters.db.tables import products
from domain.filters import SearchFilters
from domain.lexical import KeywordHits, KeywordQuery, TermGroup, Vocabulary

log = logging.getLogger("vitrine.keyword_search")

FTS_TABLE = "products_fts"
FTS_COLUMNS = ("category", "attributes", "name", "text")  # migration 0002's fields, most telling first
PG_CLASSES = ("A", "B", "C", "D")  # the same fields as PostgreSQL weight classes
ATTRIBUTES = 1  # the field of colour and who it is for
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
    # PostgreSQL scores at most this many products per tier (see `_postgres_statement`); at least `k`.
    candidate_cap: int = 1000


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
        self._loading = BackgroundLoad(self._refresh_quietly, name="vitrine-keyword-vocabulary")

    # --- search -------------------------------------------------------------------------------------------

    async def search(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> KeywordHits:
        if not query.admitting or k <= 0:
            return KeywordHits(ids=[], scores=[], total=0)
        build = self._postgres_statement if self._postgres else self._sqlite_statement
        with database_call():
            async with self._engine.connect() as connection:
                rows = (await connection.execute(build(query, k=k, filters=filters))).all()
        return KeywordHits(
            ids=[int(row.id) for row in rows],
            scores=[float(row.score) for row in rows],
            total=int(rows[0].total) if rows else 0,
        )

    def _postgres_statement(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> sa.TextClause:
        admitting = query.admitting
        cap = max(k, self.tuning.candidate_cap)
        params: dict[str, Any] = {"k": k, "cap": cap}
        terms: list[str] = []
        matches = [
            f"({_tsquery(group, label=PG_CLASSES[ATTRIBUTES] if group.attribute else '')})" for group in query.groups
        ]
        # A negated group ('not black') is scored, but takes no part in choosing candidates.
        params["every"] = " & ".join(
            match for match, group in zip(matches, query.groups, strict=True) if not group.unwanted
        )
        params["any"] = " | ".join(
            match for match, group in zip(matches, query.groups, strict=True) if group in admitting
        )
        parsed = ["to_tsquery('simple', :every) AS every", "to_tsquery('simple', :any) AS any"]
        for g, group in enumerate(query.groups):
            for f in _fields(group):
                params[f"g{g}f{f}"] = _tsquery(group, label=PG_CLASSES[f])
                params[f"w{g}f{f}"] = group.weight * self.tuning.field_weights[f]
                parsed.append(f"to_tsquery('simple', :g{g}f{f}) AS g{g}f{f}")
                terms.append(f"CASE WHEN p.{SEARCH_DOCUMENT} @@ q.g{g}f{f} THEN CAST(:w{g}f{f} AS float8) ELSE 0 END")
        where, filter_params = _filter_sql(filters)
        # Scoring reads every candidate's document once per (group, field), so on a large catalog a common word
        # ('dress', 'black') would score tens of thousands of rows. Only a bounded set of candidates is scored:
        # first products matching every group (they get every group's weight, so they hold the best scores),
        # then products matching any admitting group, each tier at most `cap` rows (GIN answers both, one
        # tsquery each). Below `cap` matches that is every match and `total` is exact; above, the page is the
        # best of `cap`-plus candidates and `total` is a lower bound (at least `cap`), as a search engine's
        # tracked hit count is. Each tsquery is parsed once, in a one-row CTE: inline, a generic plan of the
        # prepared statement would parse it again for every candidate row.
        every = (
            f"SELECT p.id FROM products AS p, q WHERE p.{SEARCH_DOCUMENT} @@ q.every AND {where} LIMIT :cap"
            if len(query.wanted) > 1
            else None
        )
        anyone = f"SELECT p.id FROM products AS p, q WHERE p.{SEARCH_DOCUMENT} @@ q.any AND {where} LIMIT :cap"
        candidates = f"({every}) UNION ({anyone})" if every else anyone
        sql = f"""
            WITH q AS MATERIALIZED (SELECT {", ".join(parsed)}),
                 c AS MATERIALIZED ({candidates})
            SELECT p.id, {" + ".join(terms)} AS score, (SELECT count(*) FROM c) AS total
            FROM c JOIN products AS p ON p.id = c.id, q
            ORDER BY score DESC, p.id
            LIMIT :k"""
        return _text(sql, {**params, **filter_params})

    def _sqlite_statement(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> sa.TextClause:
        admitting = query.admitting
        admits = " OR ".join(
            f"({FTS_COLUMNS[ATTRIBUTES]} : ({_fts5_query(group)}))" if group.attribute else f"({_fts5_query(group)})"
            for group in admitting
        )
        params: dict[str, Any] = {"k": k}
        parts = []
        for g, group in enumerate(query.groups):
            for f in _fields(group):
                match = f"{FTS_COLUMNS[f]} : ({_fts5_query(group)})"
                params[f"g{g}f{f}"] = match if group in admitting else f"({match}) AND ({admits})"
                params[f"w{g}f{f}"] = group.weight * self.tuning.field_weights[f]
                parts.append(
                    f"SELECT rowid AS id, :w{g}f{f} AS score FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :g{g}f{f}"
                )
        where, filter_params = _filter_sql(filters)
        # One FTS5 lookup per (group, field): a match scores the group's weight times the field's, summed.
        sql = f"""
            SELECT m.id, sum(m.score) AS score, count(*) OVER () AS total
            FROM ({" UNION ALL ".join(parts)}) AS m JOIN products AS p ON p.id = m.id
            WHERE {where}
            GROUP BY m.id
            ORDER BY score DESC, m.id
            LIMIT :k"""
        return _text(sql, {**params, **filter_params})

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
        if stale:
            self._loading.start()
        return self._vocabulary

    async def refresh_vocabulary(self) -> Vocabulary:
        async with self._lock:
            await self._load()
        assert self._vocabulary is not None
        return self._vocabulary

    async def close(self) -> None:
        await self._loading.close()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_vocabulary()
        except Exception as exc:  # keep serving the old vocabulary; the next stale read tries again
            log.warning("keyword vocabulary refresh failed: %s", exc)

    async def _load(self) -> None:
        with database_call():
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


def _fields(group: TermGroup) -> range:
    """The fields a group is scored in: attribute groups only in the attributes field, others in all four."""
    return range(ATTRIBUTES, ATTRIBUTES + 1) if group.attribute else range(len(FTS_COLUMNS))


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


def _filter_sql(filters: SearchFilters | None) -> tuple[str, dict[str, Any]]:
    """The request's filters as a WHERE fragment over `products AS p`, with its parameters."""
    conditions = ["p.is_active"]
    params: dict[str, Any] = {}
    if filters is not None:
        if filters.min_price is not None:
            conditions.append("p.search_price >= :min_price")
            params["min_price"] = Decimal(str(filters.min_price))
        if filters.max_price is not None:
            conditions.append("p.search_price <= :max_price")
            params["max_price"] = Decimal(str(filters.max_price))
        if filters.in_stock is not None:
            conditions.append("p.in_stock = :in_stock")
            params["in_stock"] = filters.in_stock
        for column, values in filters.names():  # an empty list constrains nothing (domain/filters.py)
            conditions.append(f"p.{column} IN :{column}")
            params[column] = list(values)
    return " AND ".join(conditions), params


def _text(sql: str, params: dict[str, Any]) -> sa.TextClause:
    """`sql` with its parameters bound; list values expand to one parameter each (IN)."""
    binds: list[sa.BindParameter[Any]] = [
        sa.bindparam(name, value, expanding=True) if isinstance(value, list) else sa.bindparam(name, value)
        for name, value in params.items()
    ]
    return sa.text(sql).bindparams(*binds)
