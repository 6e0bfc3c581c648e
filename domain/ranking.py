"""From index hits to a page of live products.

The index is built from a snapshot of the catalog, so some of its hits may have turned inactive since. A page
is assembled from the active hits only; when dropping inactive (or excluded) products leaves the page short,
more hits are asked for, so a page stays full whenever enough products match.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from domain.api_models import ProductResult
from domain.ports import IndexHits, ProductLookup
from domain.products import product_result

# Extra hits fetched beyond offset+limit so one or two inactive products do not cost a second round trip.
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
        rows = await catalog.fetch([pid for pid, _ in candidates])
        live = [(pid, score) for pid, score in candidates if pid in rows]
        exhausted = len(hits.ids) < k or k >= MAX_HITS
        if len(live) >= wanted or exhausted:
            break
        k = min(MAX_HITS, k * 2)
    page = [product_result(rows[pid], score=score) for pid, score in live[offset:wanted]]
    return RankedPage(results=page, total=hits.total, index_version=hits.index_version)
