"""The index benchmark: build a 1M-product index the way `vitrine index build` does, then measure each plan.

    .venv/bin/python loadtests/bench_index.py                      # 1M x 512, 200 queries a row
    .venv/bin/python loadtests/bench_index.py --size 100000        # quicker, while tuning
    .venv/bin/python loadtests/bench_index.py --index-dir var/bench-1m --tuning ef_per_result=4
                    # keep the built index (the build is most of a run) and measure other search knobs on it

Writes reports/index-benchmark.md (git-ignored) and prints it. Per row: how many products the filter
matches, which plan answered (runners/vector_index.py), p50/p95 wall-clock latency of one `search` call as
the index service makes it, p95 CPU time of that call (what it costs with the cores to itself: on a shared
box wall-clock p95 mostly measures the neighbours), and recall@10 against an exact scan of the matching rows.

The vectors are synthetic but shaped like product embeddings rather than uniform noise (on which every ANN
index looks worse than it is on real data): a mixture of product-type clusters of uneven size around a
common direction (CLIP embeddings share one, so unrelated products still score ~0.3), each cluster spread
along a low-rank set of directions shared by all clusters ("colour", "style", ...) plus isotropic noise.
Same-cluster products score ~0.8, others ~0.3. Attributes: price (lognormal) and stock (85% in stock) are
independent of the vectors, as are brand (3,000, Zipf) and merchant; category is derived from the cluster,
so category filters are correlated with the vectors as they are in a real shop.

Rows:
    attributes ~F    price windows, brand sets, in-stock + price: independent of the query
    category ~F      categories covering F of the catalog, the query inside one of them (the common case)
    category, far    the same, but the query from a category outside the filter: every match is far from
                     it and scores within noise of the others, so recall@10 against exact needs an almost
                     exhaustive scan. A known limit, reported so it is not mistaken for a typical query.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from domain.filters import SearchFilters  # noqa: E402
from domain.settings import get_settings  # noqa: E402
from runners.vector_index import (  # noqa: E402
    ProductAttributes,
    SearchHits,
    SearchTuning,
    VectorIndex,
    current_version,
    read_manifest,
)

CHUNK = 65_536


# --- synthetic catalog --------------------------------------------------------------------------------------


@dataclass
class Catalog:
    vectors: np.ndarray
    cluster: np.ndarray
    price: np.ndarray  # float32
    in_stock: np.ndarray
    brand: np.ndarray  # int codes
    merchant: np.ndarray
    category: np.ndarray
    mixture: Mixture

    @property
    def size(self) -> int:
        return len(self.vectors)


class Mixture:
    def __init__(self, dim: int, clusters: int, *, rank: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        shared = rng.standard_normal(dim).astype(np.float32)
        shared /= np.linalg.norm(shared)
        centers = rng.standard_normal((clusters, dim)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        self.centers = centers + 0.8 * shared
        self.basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # rank x dim
        weights = rng.lognormal(0.0, 1.0, clusters)  # product types of uneven size
        self.weights = weights / weights.sum()
        self.dim, self.rank = dim, rank

    def sample(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(clusters)
        spread = rng.standard_normal((n, self.rank), dtype=np.float32) * np.float32(0.5 / np.sqrt(self.rank))
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) * np.float32(0.35 / np.sqrt(self.dim))
        x = self.centers[clusters] + spread @ self.basis + noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def make_catalog(size: int, dim: int, seed: int) -> Catalog:
    clusters = max(50, size // 500)
    mixture = Mixture(dim, clusters, seed=seed)
    rng = np.random.default_rng(seed + 1)
    cluster = rng.choice(clusters, size=size, p=mixture.weights).astype(np.int32)
    vectors = np.empty((size, dim), dtype=np.float32)
    for begin in range(0, size, CHUNK):
        vectors[begin : begin + CHUNK] = mixture.sample(cluster[begin : begin + CHUNK], rng)
    brand_weights = 1.0 / np.arange(1, 3001) ** 1.1
    merchant_weights = 1.0 / np.arange(1, 61)
    return Catalog(
        vectors=vectors,
        cluster=cluster,
        price=np.round(rng.lognormal(3.6, 0.9, size), 2).astype(np.float32),
        in_stock=rng.random(size) < 0.85,
        brand=rng.choice(3000, size=size, p=brand_weights / brand_weights.sum()).astype(np.int32),
        merchant=rng.choice(60, size=size, p=merchant_weights / merchant_weights.sum()).astype(np.int32),
        category=(cluster % 400).astype(np.int32),
        mixture=mixture,
    )


def attributes_of(catalog: Catalog) -> ProductAttributes:
    return ProductAttributes.from_values(
        price=catalog.price,
        in_stock=catalog.in_stock,
        brand=[f"Brand {b}" for b in catalog.brand.tolist()],
        category=[f"Category {c}" for c in catalog.category.tolist()],
        merchant=[f"Merchant {m}" for m in catalog.merchant.tolist()],
    )


# --- filters and queries ------------------------------------------------------------------------------------


@dataclass
class Case:
    query: np.ndarray
    filters: SearchFilters | None
    mask: np.ndarray | None  # computed here from the raw columns, independently of the index


def _price_window(catalog: Catalog, fraction: float, rng: np.random.Generator, among: np.ndarray) -> tuple:
    prices = np.sort(catalog.price[among])
    start = rng.uniform(0, max(1e-9, 1 - fraction))
    low = prices[int(start * (len(prices) - 1))]
    high = prices[min(len(prices) - 1, int((start + fraction) * (len(prices) - 1)))]
    return float(low), float(high)


def _codes_covering(counts: np.ndarray, target: int, rng: np.random.Generator) -> list[int]:
    """Random codes (big ones likelier, at most 200: the filter's limit) whose products add up to ~`target`."""
    chosen, total = [], 0
    for code in np.argsort(-counts * rng.uniform(0.2, 1.8, len(counts))):
        if counts[code] == 0 or total + counts[code] > target * 1.1:
            continue
        chosen.append(int(code))
        total += int(counts[code])
        if total >= target * 0.9 or len(chosen) == 200:
            break
    return chosen


def attribute_case(catalog: Catalog, fraction: float, rng: np.random.Generator, turn: int) -> Case:
    n = catalog.size
    everything = np.arange(n)
    kind = turn % 3
    if kind == 0:  # a price window
        low, high = _price_window(catalog, fraction, rng, everything)
        filters = SearchFilters(min_price=low, max_price=high)
        mask = (catalog.price >= np.float32(low)) & (catalog.price <= np.float32(high))
    elif kind == 1:  # a set of brands
        brands = _codes_covering(np.bincount(catalog.brand, minlength=3000), int(fraction * n), rng)
        filters = SearchFilters(brands=[f"Brand {b}" for b in brands])
        mask = np.isin(catalog.brand, brands)
    else:  # in stock, within a price window
        in_stock = np.flatnonzero(catalog.in_stock)
        low, high = _price_window(catalog, min(1.0, fraction / 0.85), rng, in_stock)
        filters = SearchFilters(in_stock=True, min_price=low, max_price=high)
        mask = catalog.in_stock & (catalog.price >= np.float32(low)) & (catalog.price <= np.float32(high))
    query = catalog.mixture.sample(rng.choice(len(catalog.mixture.weights), 1, p=catalog.mixture.weights), rng)
    return Case(query[0], filters, mask)


def category_case(catalog: Catalog, fraction: float, rng: np.random.Generator, *, near: bool) -> Case:
    counts = np.bincount(catalog.category, minlength=400)
    categories = _codes_covering(counts, int(fraction * catalog.size), rng)
    mask = np.isin(catalog.category, categories)
    inside = np.isin(np.arange(len(catalog.mixture.weights)) % 400, categories)
    pool = np.flatnonzero(inside if near else ~inside)
    weights = catalog.mixture.weights[pool] / catalog.mixture.weights[pool].sum()
    query = catalog.mixture.sample(rng.choice(pool, 1, p=weights), rng)[0]
    return Case(query, SearchFilters(categories=[f"Category {c}" for c in categories]), mask)


def unfiltered_case(catalog: Catalog, rng: np.random.Generator) -> Case:
    query = catalog.mixture.sample(rng.choice(len(catalog.mixture.weights), 1, p=catalog.mixture.weights), rng)
    return Case(query[0], None, None)


# --- measuring ----------------------------------------------------------------------------------------------


def exact_top_k(vectors: np.ndarray, cases: list[Case], k: int) -> list[set[int]]:
    """Exact top-k rows per case among its matching rows: one pass over the vectors for all cases."""
    queries = np.stack([case.query for case in cases]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    best_scores = np.full((len(cases), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(cases), k), -1, dtype=np.int64)
    for begin in range(0, len(vectors), CHUNK * 2):
        block = vectors[begin : begin + CHUNK * 2]
        scores = queries @ block.T  # cases x rows
        for i, case in enumerate(cases):
            if case.mask is not None:
                scores[i, ~case.mask[begin : begin + len(block)]] = -np.inf
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(begin, begin + len(block)), scores.shape)], 1
        )
        top = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, 1)
        best_rows = np.take_along_axis(merged_rows, top, 1)
    return [set(rows[scores > -np.inf].tolist()) for rows, scores in zip(best_rows, best_scores, strict=True)]


@dataclass
class Row:
    name: str
    matching: float
    plans: str
    p50_ms: float
    p95_ms: float
    cpu_p95_ms: float
    recall: float
    full: float  # share of queries answered with min(k, matching) results


def measure(index: VectorIndex, name: str, cases: list[Case], k: int) -> Row:
    truth = exact_top_k(index.vectors, cases, k)
    for case in cases[:5]:  # warm caches and code paths
        index.search(case.query, k=k, filters=case.filters)
    wall, cpu, recalls, plans, full = [], [], [], {}, 0
    for case, expected in zip(cases, truth, strict=True):
        started, started_cpu = time.perf_counter(), time.thread_time()
        hits: SearchHits = index.search(case.query, k=k, filters=case.filters)
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        total = index.size if case.mask is None else int(case.mask.sum())
        if hits.total != total:
            raise AssertionError(f"{name}: index counted {hits.total} matching products, the benchmark {total}")
        found = set(np.searchsorted(index.ids, hits.ids).tolist())  # ids are row numbers here (see main)
        recalls.append(len(found & expected) / max(1, len(expected)))
        plans[hits.plan] = plans.get(hits.plan, 0) + 1
        full += len(hits.ids) == min(k, total)
    matching = np.mean([1.0 if c.mask is None else c.mask.mean() for c in cases])
    return Row(
        name=name,
        matching=float(matching),
        plans=", ".join(f"{plan} {count * 100 // len(cases)}%" for plan, count in sorted(plans.items())),
        p50_ms=float(np.percentile(wall, 50) * 1e3),
        p95_ms=float(np.percentile(wall, 95) * 1e3),
        cpu_p95_ms=float(np.percentile(cpu, 95) * 1e3),
        recall=float(np.mean(recalls)),
        full=full / len(cases),
    )


def _rss_gib() -> float:
    return float(psutil.Process().memory_info().rss / 2**30)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _pair(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if name not in SearchTuning.__dataclass_fields__ or not value:
        raise SystemExit(f"--tuning wants NAME=VALUE with NAME one of {', '.join(SearchTuning.__dataclass_fields__)}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="queries per row")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--exact-threshold", type=int, default=None, help="default: settings (as index build)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "index-benchmark.md")
    parser.add_argument(
        "--index-dir", type=Path, default=None, help="keep the built index here; reuse it if it matches the args"
    )
    parser.add_argument(
        "--tuning", action="append", default=[], metavar="NAME=VALUE", help="a SearchTuning field (repeatable)"
    )
    args = parser.parse_args()
    # None: the index's own tuning, as the service searches it (with the efSearch calibrated when it was built)
    tuning = (
        replace(SearchTuning(), **{k: type(getattr(SearchTuning(), k))(v) for k, v in map(_pair, args.tuning)})
        if args.tuning
        else None
    )
    threshold = args.exact_threshold or get_settings().index_exact_threshold
    started = time.perf_counter()
    load_before = _load()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {line}", flush=True)

    say(f"generating {args.size:,} x {args.dim} vectors and attributes")
    catalog = make_catalog(args.size, args.dim, args.seed)
    attributes = attributes_of(catalog)
    ids = np.arange(args.size, dtype=np.int64)  # ids = rows, so recall needs no id lookups
    rss_data = _rss_gib()

    tag = f"synthetic-{args.size}x{args.dim}-seed{args.seed}-exact{threshold}"
    kept = args.index_dir and current_version(args.index_dir)
    scratch = args.index_dir or Path(tempfile.mkdtemp(prefix="vitrine-bench-"))
    try:
        if kept and read_manifest(args.index_dir / kept).model_tag == tag:
            folder = args.index_dir / kept
            manifest = read_manifest(folder)
            build_seconds, save_seconds, rss_built = manifest.build_seconds, float("nan"), float("nan")
            say(f"reusing the {manifest.kind} index built in {build_seconds:.0f}s ({folder})")
        else:
            say(f"building (exact below {threshold:,} products)")
            build_started = time.perf_counter()
            built = VectorIndex.build(ids, catalog.vectors, attributes, exact_threshold=threshold, model_tag=tag)
            build_seconds = time.perf_counter() - build_started
            rss_built = _rss_gib()
            say(f"built {built.kind} in {build_seconds:.0f}s; saving and loading it back as the service does")
            save_started = time.perf_counter()
            folder = built.save(scratch)
            save_seconds = time.perf_counter() - save_started
            manifest = built.manifest
            del built
        index_bytes = sum(path.stat().st_size for path in folder.iterdir())
        faiss_bytes = (folder / "index.faiss").stat().st_size
        gc.collect()
        rss_before_load = _rss_gib()
        load_started = time.perf_counter()
        index = VectorIndex.load(folder, tuning=tuning)
        load_seconds = time.perf_counter() - load_started
        rss_loaded = _rss_gib()
        warm_started = time.perf_counter()
        index.warm()  # as the service does before swapping a version in
        warm_seconds = time.perf_counter() - warm_started
        rss_warm = _rss_gib()

        rng = np.random.default_rng(args.seed + 2)
        q = args.queries
        plan: list[tuple[str, list[Case]]] = [("unfiltered", [unfiltered_case(catalog, rng) for _ in range(q)])]
        for fraction in (0.5, 0.1, 0.03, 0.01, 0.001):
            cases = [attribute_case(catalog, fraction, rng, turn) for turn in range(q)]
            plan.append((f"attributes ~{fraction:.1%}", cases))
        for fraction in (0.5, 0.1, 0.01, 0.001):
            plan.append(
                (f"category ~{fraction:.1%}", [category_case(catalog, fraction, rng, near=True) for _ in range(q)])
            )
        for fraction in (0.1, 0.01):
            cases = [category_case(catalog, fraction, rng, near=False) for _ in range(q)]
            plan.append((f"category ~{fraction:.1%}, far query", cases))
        rows = []
        for name, cases in plan:
            say(f"measuring {name}")
            rows.append(measure(index, name, cases, args.k))
        batch = np.stack([case.query for case in plan[0][1][:64]])
        index.search_batch(batch, k=args.k)
        batch_started = time.perf_counter()
        for _ in range(3):
            index.search_batch(batch, k=args.k)
        batch_qps = 3 * len(batch) / (time.perf_counter() - batch_started)
    finally:
        if args.index_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    tuning = index.tuning
    lines = [
        f"# Index benchmark: {args.size:,} x {args.dim}, {manifest.kind}",
        "",
        f"{platform.node()}: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"load average {load_before} before, {_load()} after (other work on the box inflates wall-clock times; "
        "CPU time does not count waiting for a core). Run took "
        f"{(time.perf_counter() - started) / 60:.1f} min.",
        "",
        f"- build: {build_seconds:.0f}s ({manifest.kind}, M={manifest.hnsw_m}, efConstruction="
        f"{manifest.ef_construction}); save {save_seconds:.0f}s, load {load_seconds:.1f}s (memory-mapped), "
        f"warm {warm_seconds:.1f}s (page in the mapping)",
        f"- on disk: {index_bytes / 2**30:.2f} GiB (index.faiss {faiss_bytes / 2**30:.2f} GiB, vectors.npy "
        f"{args.size * args.dim * 4 / 2**30:.2f} GiB, ids, attributes)",
        f"- memory: RSS {rss_data:.2f} GiB with the generated data, {rss_built:.2f} GiB after building. Loading "
        f"the saved version (as the service does: index.faiss memory-mapped, its graph read) added "
        f"{rss_loaded - rss_before_load:.2f} GiB, warming it {rss_warm - rss_before_load:.2f} GiB in all "
        "(mapped pages count once touched; they are page cache, shared and reclaimable, not heap)",
        f"- plan: exact scan of the matching rows up to {tuning.exact_subset_max_rows:,}; from "
        f"{tuning.post_filter_min_fraction:.0%} of the catalog matching, unfiltered HNSW for "
        f"{tuning.post_filter_overfetch:g} * k / matching fraction candidates, the matching kept; else HNSW with a "
        f"bitmap selector, efSearch = clamp({tuning.ef_per_result} * k / matching fraction, {tuning.ef_search}, "
        f"{tuning.ef_max}); unfiltered efSearch {tuning.ef_search}",
        f"- unfiltered throughput with `search_batch` of 64: {batch_qps:,.0f} queries/s",
        "",
        f"{q} queries per row, k={args.k}; recall@{args.k} against an exact scan of the matching rows.",
        "",
        "| filter | matching | plan | p50 ms | p95 ms | CPU p95 ms | recall@10 | k returned |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.matching:.2%} | {row.plans} | {row.p50_ms:.2f} | {row.p95_ms:.2f} | "
            f"{row.cpu_p95_ms:.2f} | {row.recall:.3f} | {row.full:.0%} |"
        )
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
