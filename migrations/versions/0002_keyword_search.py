"""Keyword search: a full-text index over the product text, for the keyword leg of hybrid search.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

PostgreSQL: `products.search_document`, a stored generated tsvector, and a GIN index on it. The database
computes it on every insert and update, so a feed import keeps it in sync with no application code.
SQLite: `products_fts`, an FTS5 table keyed by product id (its rowid), kept in sync by three triggers on
`products` (insert, update of the text columns, delete) and filled from the existing rows here.

Both index the same four fields, in the same order of importance (PostgreSQL weight classes A..D, FTS5
columns 0..3): the category, the attributes (colour, who it is for), the name and brand, then the free text
(description, keywords). Words are indexed as written, lower-cased, without stemming (PostgreSQL's `simple`
configuration, FTS5's `unicode61` tokenizer): plurals, synonyms and spelling are the query side's job
(domain/query_understanding.py), identically for both backends.

These objects are not in adapters/db/tables.py (SQLAlchemy has no type for them); schema comparisons skip
them with adapters.db.keyword_search.is_keyword_index_object. On SQLite a later migration that recreates
`products` (batch mode) drops the triggers with the table and must create them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The four fields, each a SQL expression over a products row (`{row}.` is `new.`/`old.` in triggers).
FIELDS = (
    ("category", "coalesce({row}category_name, '') || ' ' || coalesce({row}fashion_category, '')"),
    ("attributes", "coalesce({row}colour, '') || ' ' || coalesce({row}fashion_suitable_for, '')"),
    ("name", "coalesce({row}product_name, '') || ' ' || coalesce({row}brand_name, '')"),
    ("text", "coalesce({row}description, '') || ' ' || coalesce({row}keywords, '')"),
)
TEXT_COLUMNS = (
    "category_name, fashion_category, colour, fashion_suitable_for, product_name, brand_name, description, keywords"
)


def _fields(row: str) -> str:
    return ", ".join(expression.format(row=row) for _, expression in FIELDS)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        vector = " || ".join(
            f"setweight(to_tsvector('simple'::regconfig, {expression.format(row='')}), '{weight}')"
            for (_, expression), weight in zip(FIELDS, "ABCD", strict=True)
        )
        op.execute(f"ALTER TABLE products ADD COLUMN search_document tsvector GENERATED ALWAYS AS ({vector}) STORED")
        op.execute("CREATE INDEX ix_products_search_document ON products USING gin (search_document)")
        return

    columns = ", ".join(name for name, _ in FIELDS)
    op.execute(f"CREATE VIRTUAL TABLE products_fts USING fts5({columns}, tokenize = 'unicode61 remove_diacritics 2')")
    op.execute(
        f"""CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
            INSERT INTO products_fts (rowid, {columns}) VALUES (new.id, {_fields("new.")});
        END"""
    )
    op.execute(
        f"""CREATE TRIGGER products_fts_update AFTER UPDATE OF {TEXT_COLUMNS} ON products BEGIN
            DELETE FROM products_fts WHERE rowid = old.id;
            INSERT INTO products_fts (rowid, {columns}) VALUES (new.id, {_fields("new.")});
        END"""
    )
    op.execute(
        """CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
            DELETE FROM products_fts WHERE rowid = old.id;
        END"""
    )
    op.execute(f"INSERT INTO products_fts (rowid, {columns}) SELECT id, {_fields('')} FROM products")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_products_search_document")
        op.execute("ALTER TABLE products DROP COLUMN IF EXISTS search_document")
        return
    for trigger in ("products_fts_insert", "products_fts_update", "products_fts_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS products_fts")
