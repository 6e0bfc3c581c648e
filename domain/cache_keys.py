"""Every cache key vitrine writes, in one place.

Keys that hold model or index output carry the model tag and index version, so a new model or a new index
version never serves stale ids or vectors: old keys simply stop being read and expire. Per-user
recommendation keys also carry the user's version counter, which feedback bumps: invalidating every cached
recommendation of a user is one INCR, with no key scan on the request path.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "vitrine"
_SPACES = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """Queries that differ only in case or spacing share embeddings and cached results."""
    return _SPACES.sub(" ", text.strip().lower())


def _digest(*parts: object) -> str:
    joined = "\x1f".join(str(part) for part in parts)
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()[:20]


def search_results(
    *, model: str, index: str, mode: str, query: str, filters: str, limit: int, offset: int, learned: str = ""
) -> str:
    """`learned`: the version of what shoppers taught about the query (domain/click_model.py), "" for none; a
    query nothing was learned for keeps the key it always had."""
    parts: tuple[object, ...] = (mode, normalise_query(query), filters, limit, offset)
    if learned:
        parts = (*parts, learned)
    return f"{PREFIX}:search:{model}:{index}:{_digest(*parts)}"


def query_embedding(*, model: str, query: str) -> str:
    return f"{PREFIX}:qemb:{model}:{_digest(normalise_query(query))}"


def product(product_id: int) -> str:
    return f"{PREFIX}:product:{product_id}"


def recommendations(*, model: str, index: str, user_id: int, user_version: int, params: str) -> str:
    return f"{PREFIX}:rec:{model}:{index}:{user_id}:{user_version}:{_digest(params)}"


def user_version(user_id: int) -> str:
    return f"{PREFIX}:uver:{user_id}"


def erase_generation(user_id: int) -> str:
    """How often the user has been erased lately: writes of their data check it (adapters/erasure.py)."""
    return f"{PREFIX}:erased:{user_id}"


def session_embedding(*, model: str, user_id: int) -> str:
    return f"{PREFIX}:session:{model}:{user_id}"


def profile_embedding(*, model: str, user_id: int) -> str:
    return f"{PREFIX}:profile:{model}:{user_id}"


def query_counts() -> str:
    return f"{PREFIX}:stats:queries"


def user_activity() -> str:
    return f"{PREFIX}:stats:users"


def pattern(kind: str) -> str:
    """A SCAN pattern for one kind of key (search, rec, product, qemb, session, profile)."""
    return f"{PREFIX}:{kind}:*"
