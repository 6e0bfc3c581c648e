"""The durable record of what shoppers did, and their long-term profiles (PostgreSQL or the embedded SQLite).

`record` is the write path of POST /api/v1/feedback: one INSERT, committed before the API answers.
A client-made `event_id` makes retries safe: the insert does nothing on a known event_id and the first row is
returned instead, so a retried event is stored and counted once. Database failures surface as
`DependencyDown` (503): the client retries, and no acknowledged event is lost.

A profile is saved only while the newest event it was computed from is still stored (`save_profile`), so a
recompute that read a user's events before a privacy erase cannot write their profile back after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db.failures import database_call
from adapters.db.tables import user_interactions, user_profiles
from domain.cache_keys import normalise_query
from domain.interactions import InteractionType
from domain.profile import StoredInteraction

RETURNED = (
    user_interactions.c.id,
    user_interactions.c.event_id,
    user_interactions.c.user_id,
    user_interactions.c.product_id,
    user_interactions.c.interaction_type,
    user_interactions.c.occurred_at,
)


def _insert_for(engine: AsyncEngine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def _stored(row: sa.Row[Any]) -> StoredInteraction:
    occurred_at: datetime = row.occurred_at
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return StoredInteraction(
        product_id=int(row.product_id),
        interaction_type=InteractionType(row.interaction_type),
        occurred_at=occurred_at.timestamp(),
        rating=row.rating,
    )


class SqlInteractionLog:
    """`InteractionLog` and profile storage over SQLAlchemy."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # The feedback insert, built once: its values travel as parameters, so an event costs SQLAlchemy no
        # statement building and no cache key over the values (py-spy: ~8% of the API worker's CPU per feedback).
        insert = _insert_for(engine)(user_interactions)
        self._insert = insert.returning(*RETURNED)
        self._insert_unless_known = insert.on_conflict_do_nothing(index_elements=["event_id"]).returning(*RETURNED)

    async def record(self, event: Any, *, occurred_at: datetime) -> tuple[dict[str, Any], bool]:
        values = {
            "event_id": event.event_id,
            "user_id": event.user_id,
            "product_id": event.product_id,
            "interaction_type": event.interaction_type.value,
            "context": event.context.value,
            "position": event.position,
            "session_id": event.session_id,
            "rating": event.rating,
            "search_query": normalise_query(event.query) if event.query else None,
            "occurred_at": occurred_at,
            "received_at": datetime.now(UTC),
        }
        statement = self._insert if event.event_id is None else self._insert_unless_known
        with database_call():
            # One statement committed on its own: no BEGIN and COMMIT round trips around it (feedback's path).
            # The answer still waits for the database to have made the row durable.
            async with self.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                inserted = (await conn.execute(statement, values)).mappings().first()
                if inserted is not None:
                    return dict(inserted), True
                existing = (
                    (await conn.execute(sa.select(*RETURNED).where(user_interactions.c.event_id == event.event_id)))
                    .mappings()
                    .one()
                )
                return dict(existing), False

    async def purchased(self, user_id: int) -> set[int]:
        query = sa.select(user_interactions.c.product_id).where(
            user_interactions.c.user_id == user_id,
            user_interactions.c.interaction_type == InteractionType.PURCHASE.value,
        )
        rows = await self._fetch(query)
        return {int(row.product_id) for row in rows}

    async def recent_for_user(self, user_id: int, *, limit: int) -> list[StoredInteraction]:
        events, _ = await self.history_for_profile(user_id, limit=limit)
        return events

    async def history_for_profile(self, user_id: int, *, limit: int) -> tuple[list[StoredInteraction], int | None]:
        """The user's most recent events, and the row id of the newest stored of them (None: no events), read
        together: `save_profile` takes that id as the proof that the profile's source still exists."""
        query = (
            sa.select(
                user_interactions.c.id,
                user_interactions.c.product_id,
                user_interactions.c.interaction_type,
                user_interactions.c.occurred_at,
                user_interactions.c.rating,
            )
            .where(user_interactions.c.user_id == user_id)
            .order_by(user_interactions.c.occurred_at.desc())
            .limit(limit)
        )
        rows = await self._fetch(query)
        return [_stored(row) for row in rows], max((int(row.id) for row in rows), default=None)

    async def recent_everyone(self, *, since: datetime, limit: int) -> list[StoredInteraction]:
        query = (
            sa.select(
                user_interactions.c.product_id,
                user_interactions.c.interaction_type,
                user_interactions.c.occurred_at,
                user_interactions.c.rating,
            )
            .where(user_interactions.c.occurred_at >= since)
            .order_by(user_interactions.c.occurred_at.desc())
            .limit(limit)
        )
        return [_stored(row) for row in await self._fetch(query)]

    async def count(self, **where: Any) -> int:
        query = sa.select(sa.func.count()).select_from(user_interactions)
        for column, value in where.items():
            query = query.where(user_interactions.c[column] == value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    # --- long-term profiles -------------------------------------------------------------------------------
    async def save_profile(
        self, user_id: int, vector: np.ndarray, *, model_tag: str, interactions: int, computed_from: int
    ) -> bool:
        """Upsert the profile, only while the event `computed_from` (a row id of the user's) is still stored;
        False when it is not: the user was erased since their events were read, and the profile with them.

        One statement, so the check and the write cannot be split. On PostgreSQL the check takes a share lock
        on that event's row, and the erase deletes the user's events before their profile, in one transaction:
        if the erase comes first, this waits for it to commit and then finds the row gone; if this comes
        first, the erase waits for it, and its delete of the profile, a later statement, sees this profile and
        deletes it. SQLite runs one writing statement at a time, so there the check simply sees the latest
        state."""
        values = {
            "user_id": user_id,
            "embedding": np.asarray(vector, dtype="<f4").tobytes(),
            "dim": int(vector.shape[0]),
            "model_tag": model_tag,
            "interaction_count": interactions,
            "updated_at": datetime.now(UTC),
        }
        source = (
            sa.select(user_interactions.c.id)
            .where(user_interactions.c.id == computed_from, user_interactions.c.user_id == user_id)
            .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite has no row locks and needs none
        )
        row = sa.select(*(sa.literal(value, user_profiles.c[name].type).label(name) for name, value in values.items()))
        statement = _insert_for(self.engine)(user_profiles).from_select(list(values), row.where(source.exists()))
        statement = statement.on_conflict_do_update(
            index_elements=["user_id"], set_={name: statement.excluded[name] for name in values if name != "user_id"}
        )
        with database_call():
            async with self.engine.begin() as conn:
                return bool((await conn.execute(statement)).rowcount)

    async def load_profile(self, user_id: int, *, model_tag: str) -> np.ndarray | None:
        query = sa.select(user_profiles.c.embedding, user_profiles.c.model_tag).where(
            user_profiles.c.user_id == user_id
        )
        rows = await self._fetch(query)
        if not rows or rows[0].model_tag != model_tag or rows[0].embedding is None:
            return None  # a profile from another model lives in another vector space
        return np.frombuffer(rows[0].embedding, dtype="<f4").astype(np.float32)

    async def _fetch(self, query: Any) -> list[sa.Row[Any]]:
        with database_call():
            async with self.engine.connect() as conn:
                return list((await conn.execute(query)).all())
