"""What shoppers chose after their searches, read from the stored events into the search's learned table.

The table (domain/click_model.py `LearnedRanking`) is computed from `user_interactions` in one grouped read of the
last `window_days` of search-context events that name their query (migration 0003), and held in the process: a
search looks its query up in a dict, with no database call. Loaded in the background on first use (a search never
waits for it: until then nothing is learned, exactly as with no feedback at all), and again every `refresh_s`,
serving the previous table meanwhile. When the database fails, searches go on with the table they have (or none)
and a later search tries again after `retry_s`.

Computed afresh each time, never accumulated: a privacy erase deletes a shopper's events, and with them their
votes at the next refresh; an event older than the window stops counting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.background_load import BackgroundLoad
from adapters.db.tables import products, user_interactions
from domain.click_model import CHOICE_WEIGHTS, NOTHING_LEARNED, ClickModel, LearnedRanking, ShopperChoice, learn
from domain.interactions import InteractionContext, InteractionType

log = logging.getLogger("vitrine.learned_ranking")


class ShopLearning:
    """`LearnedSource` over the interaction log."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        model: ClickModel | None = None,
        window_days: float = 90.0,
        refresh_s: float = 300.0,
        retry_s: float = 60.0,
    ) -> None:
        self._engine = engine
        self._model = model or ClickModel()
        self._window = timedelta(days=window_days)
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._table: LearnedRanking = NOTHING_LEARNED
        self._loaded_at: float | None = None
        self._failed_at: float | None = None
        self._loading = BackgroundLoad(self._load_quietly, name="vitrine-learned-ranking")

    async def learned_ranking(self) -> LearnedRanking:
        """The table as it is now, never waiting; starts a load in the background when one is due."""
        now = time.monotonic()
        due = self._loaded_at is None or now - self._loaded_at > self._refresh_s
        resting = self._failed_at is not None and now - self._failed_at < self._retry_s
        if due and not resting:
            self._loading.start()
        return self._table

    async def refresh(self) -> LearnedRanking:
        """Load the table now (tools, tests, and a service that wants it before its first search)."""
        await self._loading.wait()
        await self._load_quietly()
        return self._table

    async def close(self) -> None:
        await self._loading.close()

    async def _load_quietly(self) -> None:
        started = time.perf_counter()
        try:
            choices = await self.choices(since=datetime.now(UTC) - self._window)
            self._table = await asyncio.to_thread(learn, choices, self._model)  # a big log is CPU work: off the loop
            self._loaded_at = time.monotonic()
            self._failed_at = None
        except Exception as exc:  # search goes on with what it has; try again later
            log.warning("learned ranking not refreshed: %s", exc)
            self._failed_at = time.monotonic()
            return
        log.info(
            "learned ranking: %d queries from %d shopper choices in %.0f ms",
            len(self._table.queries),
            len(choices),
            (time.perf_counter() - started) * 1000,
        )

    async def choices(self, *, since: datetime) -> list[ShopperChoice]:
        """Each shopper's choices of each product after each query since `since`, per kind, at their best
        position; with the product's type."""
        events = user_interactions.c
        statement = (
            sa.select(
                events.search_query,
                events.product_id,
                events.user_id,
                events.interaction_type,
                sa.func.min(events.position).label("position"),
                products.c.category_name,
            )
            .select_from(user_interactions.outerjoin(products, products.c.id == events.product_id))
            .where(
                events.context == InteractionContext.SEARCH.value,
                events.search_query.is_not(None),
                events.occurred_at >= since,
                events.interaction_type.in_([kind.value for kind in CHOICE_WEIGHTS]),
            )
            .group_by(
                events.search_query,
                events.product_id,
                events.user_id,
                events.interaction_type,
                products.c.category_name,
            )
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            ShopperChoice(
                query=str(row.search_query),
                product_id=int(row.product_id),
                shopper=int(row.user_id),
                kind=InteractionType(row.interaction_type),
                position=None if row.position is None else int(row.position),
                product_type=row.category_name,
            )
            for row in rows
        ]
