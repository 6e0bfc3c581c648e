"""Plain fakes implementing the domain protocols (domain/ports.py), for pipeline tests without a server."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from domain.filters import SearchFilters
from domain.interactions import InteractionType
from domain.ports import Answer, IndexHits, Vector
from domain.profile import StoredInteraction


def text_seed(text: str) -> int:
    """A seed from the text's bytes: the same in every process (`hash` is salted per process, so a failing
    test would not reproduce)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class FakeEncoder:
    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[str] = []

    async def encode_text(self, text: str) -> Vector:
        self.calls.append(text)
        rng = np.random.default_rng(text_seed(text))
        vector = rng.standard_normal(self.dim).astype(np.float32)
        return vector / np.linalg.norm(vector)

    async def encode_image(self, image: Any) -> Vector:
        return await self.encode_text(f"image:{image}")


class FakeIndex:
    """Exact search over a dict of vectors; filters apply to each product's catalog row as the real index
    applies them (domain/filters.py). Counts calls and requested k."""

    def __init__(
        self, vectors: Mapping[int, Vector], rows: Mapping[int, Mapping[str, Any]], version: str = "v1"
    ) -> None:
        self.vectors = dict(vectors)
        self.rows = dict(rows)
        self.version = version
        self.requested_k: list[int] = []

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        self.requested_k.append(k)
        ids = [pid for pid in self.vectors if filters is None or filters.admits(self.rows[pid])]
        ranked = sorted(ids, key=lambda pid: float(self.vectors[pid] @ vector), reverse=True)
        top = ranked[:k]
        return IndexHits(
            ids=top,
            scores=[float(self.vectors[pid] @ vector) for pid in top],
            total=len(ids),
            index_version=self.version,
        )


class FakeCatalog:
    def __init__(self, rows: Mapping[int, Mapping[str, Any]]) -> None:
        self.rows = dict(rows)
        self.inactive: set[int] = set()
        self.fetched: list[list[int]] = []

    async def fetch(self, ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
        self.fetched.append(list(ids))
        return {pid: self.rows[pid] for pid in ids if pid in self.rows and pid not in self.inactive}


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, int] = {}

    async def get_model(self, key: str, model: type[Answer], *, kind: str) -> Answer | None:
        raw = self.values.get(key)
        return None if raw is None else model.model_validate_json(raw)

    def keep_model(self, key: str, value: BaseModel, *, ttl: int, kind: str) -> None:
        self.values[key] = value.model_dump_json()  # as Redis holds it: the round trip is part of what is tested
        self.ttls[key] = ttl


def catalog_rows(
    count: int, dim: int = 8, seed: int = 1
) -> tuple[dict[int, Vector], dict[int, float], dict[int, dict]]:
    rng = np.random.default_rng(seed)
    vectors, prices, rows = {}, {}, {}
    for pid in range(1, count + 1):
        vector = rng.standard_normal(dim).astype(np.float32)
        vectors[pid] = vector / np.linalg.norm(vector)
        prices[pid] = float(10 + pid % 90)
        rows[pid] = {"id": pid, "product_name": f"Product {pid}", "search_price": prices[pid], "in_stock": True}
    return vectors, prices, rows


class FakeInteractions:
    """Stored interactions as a list; `record` is not needed by the read paths tested with it."""

    def __init__(self, events: Mapping[int, Sequence[StoredInteraction]] | None = None) -> None:
        self.events: dict[int, list[StoredInteraction]] = {user: list(e) for user, e in (events or {}).items()}

    async def record(self, event: Any, *, occurred_at: datetime) -> tuple[dict[str, Any], bool]:
        raise NotImplementedError

    async def purchased(self, user_id: int) -> set[int]:
        return {e.product_id for e in self.events.get(user_id, []) if e.interaction_type is InteractionType.PURCHASE}

    async def recent_for_user(self, user_id: int, *, limit: int) -> list[StoredInteraction]:
        return sorted(self.events.get(user_id, []), key=lambda e: -e.occurred_at)[:limit]

    async def recent_everyone(self, *, since: datetime, limit: int) -> list[StoredInteraction]:
        everyone = [e for events in self.events.values() for e in events if e.occurred_at >= since.timestamp()]
        return sorted(everyone, key=lambda e: -e.occurred_at)[:limit]


class FakeUserState:
    """Long-term profiles, live sessions and user version counters, each a dict."""

    def __init__(self) -> None:
        self.profiles: dict[int, Vector] = {}
        self.sessions: dict[int, Vector] = {}
        self.versions: dict[int, int] = {}

    async def long_term(self, user_id: int) -> Vector | None:
        return self.profiles.get(user_id)

    async def embedding(self, user_id: int, *, now: float) -> Vector | None:
        return self.sessions.get(user_id)

    async def apply(
        self,
        user_id: int,
        kind: InteractionType,
        vector: Vector,
        *,
        weight: float,
        at: float,
        erase_generation: int | None,
    ) -> bool:
        raise NotImplementedError

    async def current(self, user_id: int) -> int:
        return self.versions.get(user_id, 0)

    async def bump(self, user_id: int, *, erase_generation: int | None = 0) -> None:
        self.versions[user_id] = self.versions.get(user_id, 0) + 1


class FakeVectors:
    """Stored product vectors (the index's), by id."""

    def __init__(self, vectors: Mapping[int, Vector]) -> None:
        self.stored = dict(vectors)

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        return {pid: self.stored[pid] for pid in product_ids if pid in self.stored}
