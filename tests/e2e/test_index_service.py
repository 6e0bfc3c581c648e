"""The index service alone, served for real: `bentoml serve runners.index_service:VectorIndexService`.

One server for the module, started before any index exists, then taken through the life an operator gives
it: not ready until a first version appears; concurrent (so batched) searches, vectors and info over HTTP
with BentoML's client, answering exactly what the same files answer in-process; then a new version saved
while searches stream in, which it must swap to within the reload interval without failing any of them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from domain.filters import SearchFilters
from runners.index_service_api import IndexQuery
from runners.vector_index import ProductAttributes, VectorIndex
from tests.e2e.support import free_port, serve, stop_process_group, wait_until

pytestmark = pytest.mark.e2e

RELOAD_INTERVAL_S = 1.0
SIZE, DIM = 3000, 32
FILTERS = SearchFilters(brands=["Brand 1", "Brand 2"], in_stock=True, max_price=70)


def _synthetic_index(seed: int) -> VectorIndex:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((SIZE, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    attributes = ProductAttributes.from_values(
        price=rng.uniform(1, 100, SIZE).round(2),
        in_stock=rng.random(SIZE) < 0.8,
        brand=[f"Brand {i % 20}" for i in range(SIZE)],
        category=[f"Category {i % 7}" for i in range(SIZE)],
        merchant=[f"Merchant {i % 3}" for i in range(SIZE)],
    )
    ids = 40_026_645_008 + np.arange(SIZE, dtype=np.int64) * (seed + 1)
    return VectorIndex.build(ids, vectors, attributes, exact_threshold=1000, model_tag=f"synthetic:{seed}")


def _query(rng: np.random.Generator, k: int = 10, filters: SearchFilters | None = None) -> IndexQuery:
    # IndexQuery objects, as the API service sends them: BentoML's JSON client cannot encode a plain dict
    # holding `"filters": None` (it walks the nested schema into the None).
    return IndexQuery(vector=rng.standard_normal(DIM).tolist(), k=k, filters=filters)


def _field(result: Any, name: str) -> Any:
    return result[name] if isinstance(result, dict) else getattr(result, name)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("index")
    port = free_port()
    env = {
        **os.environ,
        "FAISS_INDEX_PATH": str(root),
        "INDEX_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S),
        "INDEX_MAX_LATENCY_MS": "2000",  # a shared CI box: shed nothing, this test counts failures
        "BENTOML_DO_NOT_TRACK": "True",
    }
    log = root.parent / "serve.log"
    process = serve("runners.index_service:VectorIndexService", port=port, env=env, log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/livez", timeout=2).status_code == 200, timeout=60, what="livez")
        yield url, root
    finally:
        stop_process_group(process)
        output = log.read_text(errors="replace")
        if "Traceback" in output:
            print(output[-5000:])


def test_not_ready_until_a_version_exists_then_search_vectors_info(served: tuple[str, Path]) -> None:
    import bentoml

    url, root = served
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
    with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as client:
        info = client.info()
        assert info["loaded"] is False and "vitrine index build" in info["error"]

        index = _synthetic_index(seed=1)
        index.save(root)  # the watcher, not a restart, must pick it up
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, timeout=15, what="ready")
        info = client.info()
        assert info["loaded"] is True
        assert {k: info[k] for k in ("version", "model_tag", "size", "dim", "kind")} == {
            "version": index.version,
            "model_tag": "synthetic:1",
            "size": SIZE,
            "dim": DIM,
            "kind": "hnsw",
        }

        # Many concurrent single-query calls (merged into batches by the server), filtered and not.
        rng = np.random.default_rng(3)
        queries = [_query(rng, k=1 + i % 20, filters=FILTERS if i % 2 else None) for i in range(120)]

        def call(query: IndexQuery) -> Any:
            with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as own:
                [result] = own.search(queries=[query])
                return result

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, queries))
        for query, result in zip(queries, results, strict=True):
            expected = index.search(np.asarray(query.vector, np.float32), k=query.k, filters=query.filters)
            assert _field(result, "ids") == expected.ids.tolist()
            assert _field(result, "total") == expected.total
            assert np.allclose(_field(result, "scores"), expected.scores, atol=1e-5)
            assert _field(result, "index_version") == index.version
            assert _field(result, "error") is None

        # A batch from one caller, with one bad query: only that one carries an error.
        batch = client.search(queries=[_query(rng), IndexQuery(vector=[1.0, 2.0], k=3), _query(rng, filters=FILTERS)])
        assert [_field(r, "error") is None for r in batch] == [True, False, True]
        assert "dimensions" in _field(batch[1], "error") and len(_field(batch[0], "ids")) == 10

        wanted = [int(index.ids[0]), 7, int(index.ids[-1])]
        found = client.vectors(product_ids=wanted)
        found = {int(pid): vector for pid, vector in found.items()}  # JSON object keys are strings
        assert set(found) == {wanted[0], wanted[2]}
        assert np.allclose(found[wanted[2]], index.vectors[-1], atol=1e-6)


def test_a_new_version_is_swapped_in_while_searches_are_in_flight(served: tuple[str, Path]) -> None:
    import bentoml

    url, root = served
    with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as client:
        old = client.info()["version"]
    assert old, "the previous test loads a first version"
    stop = threading.Event()
    failures: list[str] = []
    seen: list[tuple[float, str]] = []

    def stream(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as own:
            while not stop.is_set():
                try:
                    results = own.search(queries=[_query(rng, filters=FILTERS if seed % 2 else None)])
                    seen.append((time.monotonic(), _field(results[0], "index_version")))
                    if _field(results[0], "error") is not None or len(_field(results[0], "ids")) != 10:
                        failures.append(f"bad result: {results[0]}")
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=stream, args=(seed,)) for seed in range(6)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        new = _synthetic_index(seed=2)
        new.save(root)
        saved_at = time.monotonic()
        with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as client:
            info = wait_until(
                lambda: (i := client.info())["version"] == new.version and i,
                timeout=RELOAD_INTERVAL_S + 2.0 + 3.0,  # interval + load, plus slack for a loaded CI box
                what="the new version",
            )
        swapped_after = time.monotonic() - saved_at
        time.sleep(1.0)  # keep searching on the new version for a while
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not failures, failures[:5]
    assert info["model_tag"] == "synthetic:2"
    assert swapped_after <= RELOAD_INTERVAL_S + 2.0 + 3.0
    versions = [version for _, version in seen]
    assert old in versions and new.version in versions, "searches ran on both sides of the swap"
    assert len(seen) > 50
    with bentoml.SyncHTTPClient(url, server_ready_timeout=0) as client:
        query = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
        [result] = client.search(queries=[IndexQuery(vector=query.tolist(), k=5)])
        assert _field(result, "ids") == new.search(query, k=5).ids.tolist()
