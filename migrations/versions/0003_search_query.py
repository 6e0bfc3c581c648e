"""Learning from the shop: the query whose results led to a search-context event.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

`user_interactions.search_query`: the query (normalised: lower case, single spaces) a shopper searched before the
click, cart add or purchase, sent as the feedback's optional `query` with context 'search'. The search learns from
it (domain/click_model.py, adapters/learned_ranking.py). Nullable and without a default, so the previous release
keeps writing events unchanged while this one rolls out; the events it writes simply teach nothing.

No index: the learned table is read in one pass over the recent events (the `occurred_at` index bounds it), a
few times an hour per worker, and every feedback write would pay for one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends (SQLite needs no batch mode for it, so products' FTS triggers stay).
    op.add_column("user_interactions", sa.Column("search_query", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_interactions") as batch:  # SQLite before 3.35 cannot DROP COLUMN in place
        batch.drop_column("search_query")
