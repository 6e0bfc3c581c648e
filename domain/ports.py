"""The small protocols the pipelines in domain/ are written against.

Adapters (adapters/, service.py) implement them over BentoML runners, SQLAlchemy and Redis; tests implement
them with plain fakes. Nothing here knows about HTTP, BentoML or a database driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from domain.filters import SearchFilters
from domain.interactions import InteractionType
from domain.profile import StoredInteraction

Vector = np.ndarray  # float32, L2-normalised, shape (dim,)
Answer = TypeVar("Answer", bound=BaseModel)


@dataclass(frozen=True)
class IndexHits:
    ids: list[int]
    scores: list[float]
    total: int
    index_version: str


class QueryEncoder(Protocol):
    async def encode_text(self, text: str) -> Vector: ...


class ImageEncoder(Protocol):
    async def encode_image(self, image: Any) -> Vector: ...


class Encoder(QueryEncoder, ImageEncoder, Protocol):
    """Both towers; a text-only model's encode_image raises `Unsupported`."""


class VectorSearcher(Protocol):
    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits: ...


class ProductLookup(Protocol):
    async def fetch(self, ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """Active products by id; inactive or unknown ids are simply absent."""
        ...


class ResultCache(Protocol):
    """Whole answers, kept as their JSON: pydantic writes and reads it in one step each."""

    async def get_model(self, key: str, model: type[Answer], *, kind: str) -> Answer | None:
        """The answer kept under `key`; None when there is none (or it no longer reads as `model`)."""
        ...

    def keep_model(self, key: str, value: BaseModel, *, ttl: int, kind: str) -> None:
        """Keep `value` without waiting for the store: no answer depends on it, and the key names the versions
        it was computed from, so one that lands late is never wrong."""
        ...


# --- personalization ----------------------------------------------------------------------------------------
class ProductVectors(Protocol):
    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        """Stored index vectors by product id; ids not in the index are absent."""
        ...


class ProductDirectory(Protocol):
    async def exists(self, product_id: int) -> bool: ...


class InteractionLog(Protocol):
    async def record(self, event: Any, *, occurred_at: datetime) -> tuple[dict[str, Any], bool]:
        """Commit the event durably; (the stored row, whether it is new). A known event_id returns its first row."""
        ...

    async def purchased(self, user_id: int) -> set[int]: ...

    async def recent_for_user(self, user_id: int, *, limit: int) -> list[StoredInteraction]: ...

    async def recent_everyone(self, *, since: datetime, limit: int) -> list[StoredInteraction]: ...


@dataclass(frozen=True)
class SessionSnapshot:
    """What a session update reads before its event is stored (`SessionStore.snapshot`).

    `erase_generation` is the user's erase generation, None when it cannot be read (the store is down). The writes
    that follow the event carry it and are dropped if the user was erased in between, so a privacy erase is final
    for everything that started before it (adapters/erasure.py). `stored` is the session as the store held it,
    opaque here: the store's compare-and-set starts from it."""

    erase_generation: int | None
    stored: bytes | None = None


class SessionStore(Protocol):
    async def snapshot(self, user_id: int) -> SessionSnapshot:
        """The user's erase generation and session, read together (one round trip) before the event is stored."""
        ...

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
        """Fold one event into the user's session atomically and, in the same write, move the user's version
        on (as `UserVersions.bump`), unless the user was erased since `since` was read (then the event is erased
        too, and nothing is written). False when nothing could be written: the store cannot be reached or the
        generation is unknown."""
        ...

    async def embedding(self, user_id: int, *, now: float) -> Vector | None: ...


class ProfileSource(Protocol):
    async def long_term(self, user_id: int) -> Vector | None: ...


class UserVersions(Protocol):
    async def current(self, user_id: int) -> int: ...

    async def bump(self, user_id: int, *, erase_generation: int | None) -> None:
        """A new event: the user's cached answers are stale (unless the user was erased since the generation)."""
        ...
