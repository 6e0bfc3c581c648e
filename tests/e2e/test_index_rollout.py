"""A new index version rolled out across two index replicas under load (`make test-split` only).

The split topology serves two index servers behind a round-robin balancer, as a Kubernetes Service fronts the
index pods; both read the shared FAISS_INDEX_PATH. A new version is written and CURRENT moved while both API
replicas take searches; then CURRENT is moved back (a rollback). Every request must succeed, every page must
be exactly the page of one version (never some hits of each), and both replicas must reach each version.

The new version is the current one less the top hits of the tracked queries, so a page tells which version
answered it. Figures are printed (pytest -s) and kept in docs/scaling.md.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from runners.vector_index import current_version, set_current
from tests.e2e.conftest import SPLIT
from tests.e2e.support import API_KEY

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not SPLIT, reason="needs two index replicas: make test-split (VITRINE_E2E_TOPOLOGY=split)"),
]

QUERIES = ["black ankle boots", "floral summer dress", "mens running shoes", "leather handbag", "denim shorts"]
PAGES = [(query, offset) for query in QUERIES for offset in (0, 10)]


Page = tuple[int, tuple[int, ...], str | None, float]  # status code, product ids, index_version, seconds


def _page(client: httpx.Client, query: str, offset: int, limit: int = 10) -> Page:
    started = time.perf_counter()
    body = {"query": query, "mode": "vector", "limit": limit, "offset": offset}
    response = client.post("/api/v1/search", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return response.status_code, (), None, elapsed
    answer = response.json()
    return 200, tuple(r["product_id"] for r in answer["results"]), answer["index_version"], elapsed


def _replica_version(url: str) -> str | None:
    try:
        return httpx.post(f"{url}/info", json={}, timeout=5).json().get("version")
    except httpx.HTTPError:
        return None


def _version_without(root: Path, dropped: set[int]) -> str:
    """Write a new version: the CURRENT one less `dropped`; moves CURRENT (as `vitrine index build` does)."""
    from runners.vector_index import ProductAttributes, VectorIndex

    current = VectorIndex.load_current(root)
    keep = ~np.isin(current.ids, np.array(sorted(dropped), dtype=np.int64))
    old = current.attributes
    attributes = ProductAttributes(
        price=old.price[keep],
        in_stock=old.in_stock[keep],
        codes={name: column[keep] for name, column in old.codes.items()},
        vocab=old.vocab,
    )
    vectors = np.ascontiguousarray(current.vectors[keep], dtype=np.float32)
    built = VectorIndex.build(
        current.ids[keep], vectors, attributes, exact_threshold=len(vectors) + 1, model_tag=current.model_tag
    )
    return built.save(root).name


class Load:
    """Threads sending tracked pages and fresh (uncached) queries to both API replicas until stopped."""

    def __init__(self, api_urls: list[str], threads_per_api: int = 2) -> None:
        self.api_urls = api_urls
        self.threads_per_api = threads_per_api
        self.records: list[tuple[float, int, Page]] = []  # (sent at, page number, the answer)
        self.fresh: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, url: str, seed: int) -> None:
        headers = {"X-API-Key": API_KEY}
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            turn = seed
            while not self._stop.is_set():
                i = turn % len(PAGES)
                sent = time.monotonic()
                self.records.append((sent, i, _page(client, *PAGES[i])))
                fresh = client.post(
                    "/api/v1/search", json={"query": f"shirt {uuid.uuid4().hex[:8]}", "mode": "vector", "limit": 5}
                )
                self.fresh.append((fresh.status_code, fresh.elapsed.total_seconds()))
                turn += 1

    def start(self) -> None:
        for url in self.api_urls:
            for n in range(self.threads_per_api):
                thread = threading.Thread(target=self._run, args=(url, n * 3), daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_rollout_and_rollback_reach_every_replica_without_failures_or_mixed_pages(stack):
    urls = json.loads((stack.log_path.parent / "topology.json").read_text())
    replicas = [urls[name] for name in sorted(urls) if name.startswith("index-")]
    apis = [urls[name] for name in sorted(urls) if name.startswith("api-")]
    assert len(replicas) == 2 and len(apis) == 2
    v1 = current_version(stack.index_path)
    assert v1 and all(_replica_version(url) == v1 for url in replicas)

    # Each query's ranking 40 deep under the current version: both versions' pages follow from it (the index is
    # exact at this catalog size, and the new version is the same vectors less `dropped`).
    with httpx.Client(base_url=apis[0], timeout=30, headers={"X-API-Key": API_KEY}) as client:
        deep = {query: _page(client, query, 0, limit=40)[1] for query in QUERIES}
    v2 = ""
    assert all(len(ranking) == 40 for ranking in deep.values())
    dropped = {pid for ranking in deep.values() for pid in ranking[:3]}
    expected = {
        i: {
            "v1": deep[query][offset : offset + 10],
            "v2": tuple(pid for pid in deep[query] if pid not in dropped)[offset : offset + 10],
        }
        for i, (query, offset) in enumerate(PAGES)
    }

    load = Load(apis)
    load.start()
    converged: dict[str, tuple[float, list[float]]] = {}  # phase -> (when all replicas had it, their delays)
    try:
        time.sleep(3)
        for phase in ("rollout", "rollback"):
            if phase == "rollout":
                target = v2 = _version_without(stack.index_path, dropped)  # written, then CURRENT moved to it
            else:
                target = v1
                set_current(stack.index_path, v1)
            started = time.monotonic()
            reached: dict[str, float] = {}
            while len(reached) < len(replicas) and time.monotonic() < started + 30:
                for url in replicas:
                    if url not in reached and _replica_version(url) == target:
                        reached[url] = time.monotonic() - started
                time.sleep(0.1)
            assert len(reached) == len(replicas), f"{phase}: replicas that reached {target}: {reached}"
            converged[phase] = (time.monotonic(), sorted(reached.values()))
            time.sleep(5)
    finally:
        load.stop()

    codes = Counter(page[0] for _, _, page in load.records) + Counter(code for code, _ in load.fresh)
    assert set(codes) == {200}, f"failed requests during the rollout: {codes}"
    seen: Counter[str] = Counter()
    names = {v1: "v1", v2: "v2"}
    for at, i, (_, ids, reported, _) in load.records:
        version = next((name for name, page in expected[i].items() if page == ids), None)
        assert version is not None, f"page {PAGES[i]} matches neither version: {ids} vs {expected[i]}"
        assert names.get(reported or "") == version, (PAGES[i], reported, version)  # it says which it is
        seen[version] += 1
        # Two seconds after both replicas hold a version, every page comes from it (cache keys carry the version).
        if converged["rollout"][0] + 2 < at < converged["rollout"][0] + 5:
            assert version == "v2", (PAGES[i], at - converged["rollout"][0])
        if at > converged["rollback"][0] + 2:
            assert version == "v1", (PAGES[i], at - converged["rollback"][0])
    assert seen["v1"] and seen["v2"], seen  # the load ran across both versions
    latencies = sorted([page[3] for _, _, page in load.records] + [s for _, s in load.fresh])
    print(
        f"\nrollout figures: {len(latencies)} requests, 0 failed, tracked pages by version {dict(seen)}, "
        f"p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, p95 {np.percentile(latencies, 95) * 1e3:.0f} ms; "
        f"replicas reached the new version after {converged['rollout'][1]} s, the rollback after "
        f"{converged['rollback'][1]} s (INDEX_RELOAD_INTERVAL_S={stack.env['INDEX_RELOAD_INTERVAL_S']})"
    )
