"""Per-user state outside the database: the live session, the cached long-term profile, the version counter.

The session lives in the cache (Redis; in-process on the embedded default), keyed by user and model. Two
events for one user can arrive at the same moment on different workers, so the read-modify-write of the
session is a compare-and-set: read it, fold the event in, and write it in a script only if it still holds what
was read; otherwise read again. Both events are applied, none is lost. The first read is feedback's snapshot,
taken with the erase generation before the event is stored, and the same script moves the user's version
counter on: an event costs two round trips, that read and the script, which both applies it and makes the
user's cached answers stale. Profiles are durable in `user_profiles` and cached for `CACHE_TTL_USER_EMBEDDING`.

Every write here is derived from the user's data read a moment before, and a privacy erase may come in
between: each carries the user's erase generation, read before that data, and is dropped if an erase
advanced it (adapters/erasure.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import cast

import numpy as np

from adapters.cache import Cache
from adapters.db.interactions import SqlInteractionLog
from adapters.erasure import (
    EraseGenerations,
    Fenced,
    FencedWrites,
    generation_of,
    write_if_unchanged,
    write_unless_erased,
)
from domain import cache_keys
from domain.interactions import InteractionType
from domain.ports import ProductVectors, SessionSnapshot, Vector
from domain.profile import MAX_EVENTS, long_term_profile
from domain.session import SessionState

log = logging.getLogger("vitrine.user_state")

SESSION_TTL_S = 4 * 3600  # longer than any session decay: by then the session has faded anyway
MAX_RACE_RETRIES = 20
RACE_PAUSE_S = 0.001
PROFILE_COALESCE_S = 1.0  # events of one user within this of each other share one profile recompute
LOCK_STRIPES = 256


class CacheSessionStore:
    def __init__(self, cache: Cache, *, model_tag: Callable[[], str]) -> None:
        self._cache = cache
        self._model_tag = model_tag
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]

    def _key(self, user_id: int) -> str:
        return cache_keys.session_embedding(model=self._model_tag(), user_id=user_id)

    async def snapshot(self, user_id: int) -> SessionSnapshot:
        async def read() -> SessionSnapshot:
            generation, stored = await self._cache.client.mget(cache_keys.erase_generation(user_id), self._key(user_id))
            # The client answers bytes (no decode_responses): a session is packed float32.
            return SessionSnapshot(erase_generation=generation_of(generation), stored=cast(bytes | None, stored))

        return await self._cache.guarded("session_snapshot", read, SessionSnapshot(erase_generation=None))

    async def apply(
        self,
        user_id: int,
        kind: InteractionType,
        vector: Vector,
        *,
        weight: float,
        at: float,
        since: SessionSnapshot,
    ) -> bool:
        erase_generation = since.erase_generation
        if erase_generation is None:
            return False  # the cache could not say whether the user is being erased: most likely it is down
        key = self._key(user_id)

        async def compare_and_set() -> bool:
            read: bytes | str | None = since.stored  # the first try starts from the snapshot: no read of its own
            for attempt in range(MAX_RACE_RETRIES):
                if attempt:
                    read = await self._cache.client.get(key)
                updated = SessionState.loads(read).apply(kind, vector, weight=weight, at=at)
                writes = FencedWrites()
                writes.set(key, updated.dumps(), ex=SESSION_TTL_S)
                queue_version_bump(writes, user_id)
                outcome = await write_if_unchanged(self._cache, user_id, erase_generation, writes, read={key: read})
                if outcome is Fenced.ERASED:
                    log.info("user %s was erased while an event was in flight; session left erased", user_id)
                    return True  # the event is erased with the rest: nothing to apply
                if outcome is Fenced.WRITTEN:
                    return True
                # Fenced.CHANGED: another event for this user landed first (on another worker): read again, after
                # a pause of up to a millisecond, so that two writers in step do not keep colliding the same way
                await asyncio.sleep(random.random() * RACE_PAUSE_S)
            log.error("session update for user %s lost the race %d times", user_id, MAX_RACE_RETRIES)
            return False

        async with self._locks[user_id % LOCK_STRIPES]:
            return await self._cache.guarded("session_update", compare_and_set, False)

    async def embedding(self, user_id: int, *, now: float) -> Vector | None:
        raw = await self._cache.get_bytes(self._key(user_id), kind="user_embedding")
        return SessionState.loads(raw).embedding(now) if raw else None


class CacheUserVersions:
    """A counter per user in every recommendation cache key: bumping it invalidates them all in O(1)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def current(self, user_id: int) -> int:
        return await self._cache.get_int(cache_keys.user_version(user_id))

    async def bump(self, user_id: int, *, erase_generation: int | None) -> None:
        # Dropped when the user was erased meanwhile: the erase moved the version on itself, and the activity
        # entry (a user id, shown on /cache/stats) must not come back.
        def writes(queued: FencedWrites) -> None:
            queue_version_bump(queued, user_id)

        await write_unless_erased(self._cache, user_id, erase_generation, writes, op="user_version")


def queue_version_bump(writes: FencedWrites, user_id: int) -> None:
    """The user's cached answers are stale: their version moves on, and the event counts towards their activity."""
    writes.incr(cache_keys.user_version(user_id))
    writes.zincrby(cache_keys.user_activity(), 1.0, str(user_id))


class Profiles:
    """Long-term profiles: read through the cache, recomputed in the background after feedback."""

    def __init__(
        self,
        cache: Cache,
        store: SqlInteractionLog,
        vectors: ProductVectors,
        *,
        model_tag: Callable[[], str],
        ttl: int,
        until_quiet: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._cache = cache
        self._store = store
        self._vectors = vectors
        self._model_tag = model_tag
        self._ttl = ttl
        self._until_quiet = until_quiet
        self._erasures = EraseGenerations(cache)
        self._pending: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()

    def _key(self, user_id: int) -> str:
        return cache_keys.profile_embedding(model=self._model_tag(), user_id=user_id)

    async def long_term(self, user_id: int) -> Vector | None:
        raw = await self._cache.get_bytes(self._key(user_id), kind="user_embedding")
        if raw is not None:
            return np.frombuffer(raw, dtype=np.float32) if raw else None
        erase_generation = await self._erasures.current(user_id)  # before the row is read
        vector = await self._store.load_profile(user_id, model_tag=self._model_tag())
        # An absent profile is cached too (as empty bytes), so cold users do not hit the database every time.
        await self._cache_profile(user_id, b"" if vector is None else vector.tobytes(), erase_generation)
        return vector

    async def _cache_profile(self, user_id: int, value: bytes, erase_generation: int | None) -> None:
        key = self._key(user_id)
        await write_unless_erased(
            self._cache,
            user_id,
            erase_generation,
            lambda queued: queued.set(key, value, ex=self._ttl),
            op="profile_set",
        )

    def schedule(self, user_id: int) -> None:
        """Recompute the user's profile soon, off the request path; bursts of events coalesce into one run."""
        if user_id in self._pending:
            self._dirty.add(user_id)
            return
        self._pending[user_id] = asyncio.create_task(self._run(user_id), name=f"vitrine-profile-{user_id}")

    async def _run(self, user_id: int) -> None:
        try:
            # A shopper's clicks come in runs: wait a moment so a run costs one recompute (up to 500 events
            # read, a profile written). A 30-day profile loses nothing by it. Then wait for the worker to be
            # between requests: a second after an event is when storefront clients that fire together (once a
            # second, after a hiccup) send their next wave, and a wave's recomputes (~15% of its requests are
            # feedback) would take turns on the loop with all of its requests.
            await asyncio.sleep(PROFILE_COALESCE_S)
            if self._until_quiet is not None:
                await self._until_quiet()
            while True:
                self._dirty.discard(user_id)
                await self.recompute(user_id)
                if user_id not in self._dirty:
                    return
        except Exception:
            log.exception("profile update for user %s failed; the next event retries it", user_id)
        finally:
            self._pending.pop(user_id, None)

    async def recompute(self, user_id: int) -> Vector | None:
        """The user's profile from their stored events, saved and cached; None when there is none to save
        (nothing pulls in any direction, or the user was erased since their events were read)."""
        erase_generation = await self._erasures.current(user_id)  # before the events are read
        events, newest = await self._store.history_for_profile(user_id, limit=MAX_EVENTS)
        vectors = await self._vectors.vectors(sorted({event.product_id for event in events}))
        profile, used = long_term_profile(events, vectors, now=time.time())
        if profile is None or newest is None:
            return None
        saved = await self._store.save_profile(
            user_id, profile, model_tag=self._model_tag(), interactions=used, computed_from=newest
        )
        if not saved:
            log.info("user %s was erased while their profile was recomputed; not saved", user_id)
            return None
        await self._cache_profile(user_id, profile.tobytes(), erase_generation)
        return profile

    async def drain(self) -> None:
        """Wait for profile updates in flight (shutdown)."""
        for task in list(self._pending.values()):
            with contextlib.suppress(Exception):
                await task
