"""IVF-PQ against the HNSW index at 1M products: build time, memory, latency and recall@10 (docs/scaling.md).

    .venv/bin/python loadtests/bench_ivfpq.py                 # 1M x 512, ~5 min on 2 cores
    .venv/bin/python loadtests/bench_ivfpq.py --size 100000   # quicker

The vectors are bench_index.py's synthetic clustered catalog (same generator, same seed), so the figures sit
beside the HNSW run of record in loadtests/README.md ("The index at 1M products"). vitrine serves HNSW (or an
exact scan below INDEX_EXACT_THRESHOLD); IVF-PQ is measured here only to size larger catalogs: what the
compressed codes cost in recall, and what re-ranking the candidates with the full vectors (memory-mapped
vectors.npy, as the service already keeps) buys back. Unfiltered queries only: filtered search would use the
same plan as HNSW (exact over small subsets, post-filtering for broad ones).

Writes reports/ivfpq-benchmark.md (git-ignored) and prints it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtests.bench_index import exact_top_k, make_catalog, unfiltered_case  # noqa: E402


def _rss_gib() -> float:
    return float(psutil.Process().memory_info().rss / 2**30)


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--nlist", type=int, default=1024, help="inverted lists (coarse centroids)")
    parser.add_argument("--pq", type=int, default=64, help="PQ sub-quantizers (bytes per vector)")
    parser.add_argument("--train", type=int, default=100_000, help="training sample")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "ivfpq-benchmark.md")
    args = parser.parse_args()
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {line}", flush=True)

    say(f"generating {args.size:,} x {args.dim} vectors (bench_index.py's generator)")
    catalog = make_catalog(args.size, args.dim, args.seed)
    vectors = catalog.vectors
    rng = np.random.default_rng(args.seed + 2)
    cases = [unfiltered_case(catalog, rng) for _ in range(args.queries)]
    queries = np.stack([case.query for case in cases]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_top_k(vectors, cases, args.k)
    rss_data = _rss_gib()

    # L2 on the unit vectors ranks exactly as inner product does, and keeps the inverted lists balanced: with
    # METRIC_INNER_PRODUCT the k-means centroids of this data (one shared direction) differ in norm and the
    # largest ones take most products, so every probe scans one giant list (measured: recall flat in nprobe).
    quantizer = faiss.IndexFlatL2(args.dim)
    index = faiss.IndexIVFPQ(quantizer, args.dim, args.nlist, args.pq, 8, faiss.METRIC_L2)
    sample = vectors[rng.choice(len(vectors), size=min(args.train, len(vectors)), replace=False)]
    say(f"training IVF{args.nlist},PQ{args.pq} on {len(sample):,} vectors")
    t0 = time.perf_counter()
    index.train(sample)
    train_s = time.perf_counter() - t0
    say(f"trained in {train_s:.0f}s; adding {len(vectors):,}")
    t0 = time.perf_counter()
    for begin in range(0, len(vectors), 65_536):
        index.add(vectors[begin : begin + 65_536])
    add_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="vitrine-ivfpq-") as scratch:
        path = Path(scratch) / "index.faiss"
        faiss.write_index(index, str(path))
        index_bytes = path.stat().st_size
    rss_built = _rss_gib()
    list_sizes = np.array([index.invlists.list_size(i) for i in range(args.nlist)])
    imbalance = float((list_sizes.astype(np.float64) ** 2).sum() * args.nlist / list_sizes.sum() ** 2)
    say(f"added in {add_s:.0f}s; {index_bytes / 2**20:.0f} MiB on disk; list imbalance {imbalance:.2f}")

    # One thread per query, timed in CPU seconds as well: on a shared box OpenMP threads spin-wait for a core and
    # wall-clock then measures the neighbours (bench_index.py reports CPU p95 for the same reason).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    rows: list[str] = []
    for nprobe in (8, 32, 128):
        for refine in (0, 10):
            index.nprobe = nprobe
            wall, cpu, recalls = [], [], []
            for query, expected in zip(queries, truth, strict=True):
                t0, c0 = time.perf_counter(), time.thread_time()
                depth = args.k * refine if refine else args.k
                _, found = index.search(query[None, :], depth)
                rows_found = found[0][found[0] >= 0]
                if refine:  # re-rank the candidates with the full vectors (vectors.npy, memory-mapped in service)
                    exact = vectors[rows_found] @ query
                    rows_found = rows_found[np.argsort(-exact)[: args.k]]
                wall.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                recalls.append(len(set(rows_found[: args.k].tolist()) & expected) / max(1, len(expected)))
            label = f"nprobe {nprobe}" + (f", re-rank {args.k * refine} with full vectors" if refine else "")
            rows.append(
                f"| {label} | {np.percentile(wall, 50) * 1e3:.2f} | {np.percentile(wall, 95) * 1e3:.2f} | "
                f"{np.percentile(cpu, 50) * 1e3:.2f} | {np.percentile(cpu, 95) * 1e3:.2f} | {np.mean(recalls):.3f} |"
            )
            say(rows[-1])
    faiss.omp_set_num_threads(threads)
    index.nprobe = 32
    batch = queries[:64]
    index.search(batch, args.k)
    t0 = time.perf_counter()
    for _ in range(3):
        index.search(batch, args.k)
    batch_qps = 3 * len(batch) / (time.perf_counter() - t0)

    lines = [
        f"# IVF-PQ benchmark: {args.size:,} x {args.dim}, IVF{args.nlist},PQ{args.pq}x8",
        "",
        f"{platform.node()}: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB. "
        f"Run took {(time.perf_counter() - started) / 60:.1f} min.",
        "",
        f"- build: train {train_s:.0f}s on {len(sample):,} vectors, add {add_s:.0f}s; inverted-list imbalance "
        f"{imbalance:.2f} (1.0 = equal lists; largest list {list_sizes.max():,} products)",
        f"- index: {index_bytes / 2**20:.0f} MiB ({index_bytes / args.size:.0f} bytes/vector; the float vectors "
        f"are {args.size * args.dim * 4 / 2**30:.2f} GiB); RSS {rss_data:.2f} GiB with the generated data, "
        f"{rss_built:.2f} GiB after building",
        f"- unfiltered throughput, batches of 64 at nprobe 32: {batch_qps:,.0f} queries/s",
        "",
        f"{args.queries} unfiltered queries, k={args.k}; recall@{args.k} against an exact scan.",
        "",
        "| search | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms | recall@10 |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print()
    print(report)


if __name__ == "__main__":
    main()
