"""Initial schema: products, user_interactions, user_profiles.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Plain SQLAlchemy types only (a migration must not change when application code does); names follow the
naming convention of adapters/db/tables.py, so both backends end up with identical constraint names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("product_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("search_price", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("merchant_image_url", sa.Text(), nullable=True),
        sa.Column("aw_image_url", sa.Text(), nullable=True),
        sa.Column("large_image", sa.Text(), nullable=True),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("merchant_name", sa.Text(), nullable=True),
        sa.Column("brand_name", sa.Text(), nullable=True),
        sa.Column("brand_id", sa.BigInteger(), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("stock_quantity", sa.Integer(), nullable=True),
        sa.Column("category_id", sa.BigInteger(), nullable=True),
        sa.Column("category_name", sa.Text(), nullable=True),
        sa.Column("aw_deep_link", sa.Text(), nullable=True),
        sa.Column("rrp_price", sa.Numeric(12, 2), nullable=True),
        sa.Column("colour", sa.Text(), nullable=True),
        sa.Column("fashion_category", sa.Text(), nullable=True),
        sa.Column("fashion_size", sa.Text(), nullable=True),
        sa.Column("fashion_suitable_for", sa.Text(), nullable=True),
        sa.Column("keywords", sa.Text(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("average_rating", sa.Float(), nullable=True),
        sa.Column("reviews", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("content_hash", sa.String(40), nullable=True),
        sa.Column("created_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
    )
    op.create_index("ix_products_is_active", "products", ["is_active"])
    op.create_index("ix_products_category_name", "products", ["category_name"])
    op.create_index("ix_products_brand_name", "products", ["brand_name"])

    op.create_table(
        "user_interactions",
        # BIGSERIAL on PostgreSQL; SQLite auto-increments only a column declared exactly INTEGER.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("interaction_type", sa.String(20), nullable=False),
        sa.Column("context", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("occurred_at", TIMESTAMPTZ, nullable=False),
        sa.Column("received_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_interactions"),
        sa.UniqueConstraint("event_id", name="uq_user_interactions_event_id"),
    )
    op.create_index(
        "ix_user_interactions_user_id_occurred_at", "user_interactions", ["user_id", "occurred_at"]
    )
    op.create_index("ix_user_interactions_occurred_at", "user_interactions", ["occurred_at"])

    op.create_table(
        "user_profiles",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=True),
        sa.Column("model_tag", sa.String(200), nullable=True),
        sa.Column("interaction_count", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_profiles"),
    )


def downgrade() -> None:
    op.drop_table("user_profiles")
    op.drop_index("ix_user_interactions_occurred_at", table_name="user_interactions")
    op.drop_index("ix_user_interactions_user_id_occurred_at", table_name="user_interactions")
    op.drop_table("user_interactions")
    op.drop_index("ix_products_brand_name", table_name="products")
    op.drop_index("ix_products_category_name", table_name="products")
    op.drop_index("ix_products_is_active", table_name="products")
    op.drop_table("products")
