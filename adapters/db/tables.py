"""The database schema as SQLAlchemy Core tables; migrations/versions/ must create exactly this.

Written for PostgreSQL and SQLite alike: ids are BIGINT (real Awin ids such as 40026645008 do not fit in
32 bits), money is NUMERIC(12, 2), and every timestamp is timezone-aware UTC in Python on both backends
(`UtcDateTime`; SQLite itself stores naive text). Constraint and index names come from one naming
convention, so Alembic sees the same names on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL, text on SQLite; always an aware UTC datetime in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoBigInteger: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.Numeric(12, 2)

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("product_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("search_price", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("merchant_image_url", sa.Text),
    sa.Column("aw_image_url", sa.Text),
    sa.Column("large_image", sa.Text),
    sa.Column("merchant_id", sa.BigInteger),
    sa.Column("merchant_name", sa.Text),
    sa.Column("brand_name", sa.Text),
    sa.Column("brand_id", sa.BigInteger),
    sa.Column("in_stock", sa.Boolean, nullable=False),
    sa.Column("stock_quantity", sa.Integer),
    sa.Column("category_id", sa.BigInteger),
    sa.Column("category_name", sa.Text),
    sa.Column("aw_deep_link", sa.Text),
    sa.Column("rrp_price", Money),
    sa.Column("colour", sa.Text),
    sa.Column("fashion_category", sa.Text),
    sa.Column("fashion_size", sa.Text),
    sa.Column("fashion_suitable_for", sa.Text),
    sa.Column("keywords", sa.Text),
    sa.Column("quality_score", sa.Float),
    sa.Column("average_rating", sa.Float),
    sa.Column("reviews", sa.Integer),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    # sha1 of ProductRecord.content_hash(); NULL means "unknown", so the next import rewrites the row.
    sa.Column("content_hash", sa.String(40)),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Index(None, "is_active"),
    sa.Index(None, "category_name"),
    sa.Index(None, "brand_name"),
)

user_interactions = sa.Table(
    "user_interactions",
    metadata,
    sa.Column("id", AutoBigInteger, primary_key=True, autoincrement=True),
    # The client's idempotency key: a retried event with the same id is stored once.
    sa.Column("event_id", sa.String(128), unique=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("product_id", sa.BigInteger, nullable=False),
    sa.Column("interaction_type", sa.String(20), nullable=False),
    sa.Column("context", sa.String(20), nullable=False),
    sa.Column("position", sa.Integer),
    sa.Column("session_id", sa.String(128)),
    sa.Column("rating", sa.SmallInteger),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    # The query (normalised) whose results led to the product, for context 'search' (migration 0003).
    sa.Column("search_query", sa.String(512)),
    sa.Index(None, "user_id", "occurred_at"),
    sa.Index(None, "occurred_at"),
)

user_profiles = sa.Table(
    "user_profiles",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("embedding", sa.LargeBinary),  # float32, little-endian, `dim` values
    sa.Column("dim", sa.Integer),
    sa.Column("model_tag", sa.String(200)),
    sa.Column("interaction_count", sa.Integer),
    sa.Column("updated_at", UtcDateTime),
)
