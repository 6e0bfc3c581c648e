"""From index hits to a page of live products.

The index is built from a snapshot of the catalog, so some of its hits may have turned inactive since. A page
is assembled from the active hits only; when dropping inactive (or excluded) products leaves the page short,
more hits are asked for, so a page stays full whenever enough products match.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from domain.api_models import ProductResult
from domain.ports import IndexHits, ProductLookup
from domain.products import product_result

# Extra hits asked of the index beyond offset+limit so one or two inactive products do not cost a second index
# call (their replacements' rows are read only when needed).
BACKFILL_SLACK = 10
# The index answers at most this many hits per query (runners/index_service_api.MAX_K): deeper pages are empty.
MAX_HITS = 1000


@dataclass(frozen=True)
class RankedPage:
    results: list[ProductResult]
    total: int
    index_version: str


async def ranked_page(
    fetch_hits: Callable[[int], Awaitable[IndexHits]],
    catalog: ProductLookup,
    *,
    offset: int,
    limit: int,
    exclude: Collection[int] = (),
) -> RankedPage:
    wanted = offset + limit
    k = min(MAX_HITS, wanted + BACKFILL_SLACK + len(exclude))
    while True:
        hits = await fetch_hits(k)
        candidates = [(pid, score) for pid, score in zip(hits.ids, hits.scores, strict=True) if pid not in exclude]
        rows, live = await first_live(candidates, catalog, wanted)
        exhausted = len(hits.ids) < k or k >= MAX_HITS
        if len(live) >= wanted or exhausted:
            break
        k = min(MAX_HITS, k * 2)
    page = [product_result(rows[pid], score=score) for pid, score in live[offset:wanted]]
    return RankedPage(results=page, total=hits.total, index_version=hits.index_version)


async def first_live(
    candidates: list[tuple[int, float]], catalog: ProductLookup, wanted: int
) -> tuple[dict[int, Mapping[str, Any]], list[tuple[int, float]]]:
    """The first `wanted` active candidates and their rows. Rows are read for as many candidates as the page
    needs, then for the next ones only if some turned out inactive: a list's slack (the index's extra hits, the
    cold-start pool) costs no product rows unless it is needed."""
    rows: dict[int, Mapping[str, Any]] = {}
    live: list[tuple[int, float]] = []
    start = 0
    while len(live) < wanted and start < len(candidates):
        batch = candidates[start : start + wanted - len(live)]
        start += len(batch)
        found = await catalog.fetch([pid for pid, _ in batch])
        rows.update(found)
        live += [(pid, score) for pid, score in batch if pid in found]
    return rows, live
