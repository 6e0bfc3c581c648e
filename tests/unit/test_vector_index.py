"""VectorIndex: exact vs HNSW, every filter against a brute-force answer, the plan's paths, persistence.

Ground truth is computed here from the raw per-product values with plain numpy, never from the index's own
columns, so a bug in how the index encodes or selects attributes shows up as a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from domain.filters import SearchFilters
from runners.vector_index import (
    CURRENT_FILE,
    EF_LADDER,
    EF_RECALL_SLACK,
    ProductAttributes,
    SearchTuning,
    VectorIndex,
    calibrate_ef_search,
    current_version,
    list_versions,
    prune_versions,
    set_current,
)
from tests import filter_cases

N, DIM, K = 20_000, 64, 10
BASE_ID = 40_026_645_008  # real product ids exceed int32


@dataclass
class Catalog:
    ids: np.ndarray
    vectors: np.ndarray
    price: np.ndarray  # float64 as the catalog holds it; NaN = no price
    in_stock: np.ndarray
    brand: list[str | None]
    category: list[str | None]
    merchant: list[str | None]
    queries: np.ndarray

    def attributes(self) -> ProductAttributes:
        return ProductAttributes.from_values(
            price=[None if np.isnan(p) else float(p) for p in self.price],
            in_stock=self.in_stock,
            brand=self.brand,
            category=self.category,
            merchant=self.merchant,
        )

    def mask(self, filters: SearchFilters) -> np.ndarray:
        mask = np.ones(len(self.ids), dtype=bool)
        price = self.price.astype(np.float32)
        if filters.min_price is not None:
            mask &= price >= np.float32(filters.min_price)
        if filters.max_price is not None:
            mask &= price <= np.float32(filters.max_price)
        if filters.in_stock is not None:
            mask &= self.in_stock == filters.in_stock
        for values, wanted in (
            (self.brand, filters.brands),
            (self.category, filters.categories),
            (self.merchant, filters.merchants),
        ):
            if wanted:
                mask &= np.array([value in wanted for value in values])
        return mask

    def exact(self, query: np.ndarray, filters: SearchFilters | None, k: int) -> tuple[np.ndarray, int]:
        mask = self.mask(filters) if filters is not None else np.ones(len(self.ids), dtype=bool)
        scores = np.where(mask, self.vectors @ (query / np.linalg.norm(query)), -np.inf)
        order = np.argsort(-scores, kind="stable")[: min(k, int(mask.sum()))]
        return self.ids[order], int(mask.sum())


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((200, DIM))
    labels = rng.integers(0, 200, N)
    vectors = _normalised(centers[labels] + 0.6 * rng.standard_normal((N, DIM)))
    queries = _normalised(centers[rng.integers(0, 200, 60)] + 0.6 * rng.standard_normal((60, DIM)))
    price = np.round(rng.lognormal(3.5, 0.8, N), 2)
    price[:50] = np.nan
    price[100:120] = 19.99  # exactly on a bound
    brands = [f"Brand {i}" for i in range(300)]
    brand_weights = 1.0 / np.arange(1, 301)
    brand = [brands[i] for i in rng.choice(300, N, p=brand_weights / brand_weights.sum())]
    brand[:500] = [None] * 500
    category = [f"Category {label % 40}" for label in labels]  # correlated with the vectors, as in a shop
    merchant = [f"Merchant {i}" for i in rng.integers(0, 8, N)]
    ids = BASE_ID + np.arange(N, dtype=np.int64) * 13
    return Catalog(ids, vectors, price, rng.random(N) < 0.8, brand, category, merchant, queries)


@pytest.fixture(scope="module")
def flat(catalog: Catalog) -> VectorIndex:
    return VectorIndex.build(
        catalog.ids, catalog.vectors, catalog.attributes(), exact_threshold=N + 1, model_tag="test:1"
    )


@pytest.fixture(scope="module")
def hnsw(catalog: Catalog) -> VectorIndex:
    return VectorIndex.build(catalog.ids, catalog.vectors, catalog.attributes(), exact_threshold=N, model_tag="test:1")


def _recall(found: np.ndarray, expected: np.ndarray) -> float:
    return len(set(found.tolist()) & set(expected.tolist())) / max(len(expected), 1)


def _assert_valid(hits: object, catalog: Catalog, filters: SearchFilters | None, k: int, total: int) -> None:
    ids, scores = hits.ids, hits.scores  # type: ignore[attr-defined]
    assert hits.total == total  # type: ignore[attr-defined]
    assert len(ids) == min(k, total), "k results whenever at least k products match"
    assert np.all(np.diff(scores) <= 1e-6), "scores must be descending"
    assert len(set(ids.tolist())) == len(ids)
    if filters is not None:
        allowed = set(catalog.ids[catalog.mask(filters)].tolist())
        assert set(ids.tolist()) <= allowed, "every result matches the filters"


# --- kinds and unfiltered recall ----------------------------------------------------------------------------


def test_the_threshold_picks_the_kind(flat: VectorIndex, hnsw: VectorIndex) -> None:
    assert flat.kind == "flat"
    assert hnsw.kind == "hnsw"
    assert hnsw.manifest.hnsw_m == 32 and flat.manifest.hnsw_m is None
    assert hnsw.size == flat.size == N and hnsw.dim == DIM


def test_flat_is_exact_and_hnsw_recall_is_high(catalog: Catalog, flat: VectorIndex, hnsw: VectorIndex) -> None:
    recalls = []
    for query in catalog.queries:
        expected, _ = catalog.exact(query, None, K)
        exact_hits = flat.search(query, k=K)
        assert exact_hits.ids.tolist() == expected.tolist()
        _assert_valid(exact_hits, catalog, None, K, N)
        approximate = hnsw.search(query, k=K)
        _assert_valid(approximate, catalog, None, K, N)
        recalls.append(_recall(approximate.ids, expected))
    assert np.mean(recalls) >= 0.95


def test_scores_are_cosine_similarities(catalog: Catalog, hnsw: VectorIndex) -> None:
    hits = hnsw.search(catalog.vectors[5] * 3.0, k=1)  # an unnormalised query is normalised (a copy)
    assert hits.ids[0] == catalog.ids[5]
    assert hits.scores[0] == pytest.approx(1.0, abs=1e-5)


# --- filters ------------------------------------------------------------------------------------------------

FILTERS = {
    "price range": SearchFilters(min_price=20, max_price=40),
    "min price only": SearchFilters(min_price=150),
    "max price only": SearchFilters(max_price=12),
    "price bound is inclusive": SearchFilters(min_price=19.99, max_price=19.99),
    "in stock": SearchFilters(in_stock=True),
    "out of stock": SearchFilters(in_stock=False),
    "one brand": SearchFilters(brands=["Brand 0"]),
    "rare brands": SearchFilters(brands=["Brand 250", "Brand 251", "Brand 299"]),
    "many brands": SearchFilters(brands=[f"Brand {i}" for i in range(0, 300, 3)]),
    "category": SearchFilters(categories=["Category 3"]),
    "categories": SearchFilters(categories=["Category 1", "Category 2", "Category 30"]),
    "merchant": SearchFilters(merchants=["Merchant 4"]),
    "brand + in stock + price": SearchFilters(brands=["Brand 1", "Brand 2"], in_stock=True, max_price=60),
    "category + merchant": SearchFilters(categories=["Category 5", "Category 6"], merchants=["Merchant 1"]),
    "everything": SearchFilters(
        min_price=10,
        max_price=80,
        in_stock=True,
        brands=["Brand 0", "Brand 3"],
        categories=["Category 7"],
        merchants=["Merchant 0", "Merchant 1", "Merchant 2"],
    ),
    "about 0.1 percent": SearchFilters(categories=["Category 9"], merchants=["Merchant 3"], max_price=13),
    "known and unknown brands": SearchFilters(brands=["Brand 4", "No Such Brand"]),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_flat_are_exact(name: str, catalog: Catalog, flat: VectorIndex) -> None:
    filters = FILTERS[name]
    for query in catalog.queries[:20]:
        expected, total = catalog.exact(query, filters, K)
        assert total > 0, "each case must match something"
        hits = flat.search(query, k=K, filters=filters)
        _assert_valid(hits, catalog, filters, K, total)
        assert hits.ids.tolist() == expected.tolist()


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_hnsw_return_k_matching_results_with_high_recall(
    name: str, catalog: Catalog, hnsw: VectorIndex
) -> None:
    filters = FILTERS[name]
    recalls = []
    for query in catalog.queries[:20]:
        expected, total = catalog.exact(query, filters, K)
        hits = hnsw.search(query, k=K, filters=filters)
        _assert_valid(hits, catalog, filters, K, total)
        recalls.append(_recall(hits.ids, expected))
    assert np.mean(recalls) >= 0.9


def test_the_plan_paths_all_answer_correctly(catalog: Catalog) -> None:
    """Force each path: exact subset scan, post-filtered and bitmap graph search, the exact fallback when dry.

    Recall is asserted for a filter independent of the vectors (price): a category is correlated with them,
    and a query far from every matching product is where a graph walk is weakest (see the benchmark), so
    for it only the contract (k matching results, in order) is asserted.
    """
    independent = SearchFilters(min_price=25, max_price=38)  # ~20%, whatever the cluster
    correlated = SearchFilters(categories=["Category 2", "Category 3", "Category 4", "Category 5"])  # ~10%
    rare = SearchFilters(categories=["Category 9"], merchants=["Merchant 3"], max_price=13)  # ~0.1%
    broad = SearchFilters(max_price=33)  # ~half the catalog
    cases = {"exact": SearchTuning(exact_subset_max_rows=N), "graph": SearchTuning(exact_subset_max_rows=0)}
    cases["starved"] = SearchTuning(exact_subset_max_rows=0, ef_max=16, ef_search=16, ef_per_result=0.1)
    for name, tuning in cases.items():
        index = VectorIndex.build(
            catalog.ids, catalog.vectors, catalog.attributes(), exact_threshold=1, model_tag="t", tuning=tuning
        )
        for case in (independent, correlated, rare, broad):
            recalls, plans = [], set()
            for query in catalog.queries[:20]:
                expected, total = catalog.exact(query, case, K)
                hits = index.search(query, k=K, filters=case)
                _assert_valid(hits, catalog, case, K, total)
                recalls.append(_recall(hits.ids, expected))
                plans.add(hits.plan)
            if name == "exact":
                assert plans == {"exact-subset"} and np.mean(recalls) == 1.0
            elif case is independent:
                assert plans == {"filtered-graph"}
                if name == "graph":
                    assert np.mean(recalls) >= 0.9
            elif case is broad and name == "graph":
                assert plans == {"post-filtered"} and np.mean(recalls) >= 0.9


def test_plans_by_selectivity(catalog: Catalog, hnsw: VectorIndex) -> None:
    query = catalog.queries[0]
    assert hnsw.search(query, k=K).plan == "unfiltered"
    assert hnsw.search(query, k=K, filters=SearchFilters(brands=["No Such Brand"])).plan == "none-match"
    assert hnsw.search(query, k=K, filters=FILTERS["one brand"]).plan == "exact-subset"  # small subset


def test_price_bounds_compare_at_stored_precision(catalog: Catalog, flat: VectorIndex) -> None:
    hits = flat.search(catalog.queries[0], k=100, filters=SearchFilters(min_price=19.99, max_price=19.99))
    priced_so = catalog.ids[catalog.price == 19.99]  # rows 100-119, and whichever random prices rounded to it
    assert hits.total == len(priced_so) >= 20
    assert set(hits.ids.tolist()) == set(priced_so.tolist())


def test_products_without_a_price_never_match_a_price_filter(catalog: Catalog, flat: VectorIndex) -> None:
    unpriced = set(catalog.ids[:50].tolist())
    hits = flat.search(catalog.vectors[0], k=100, filters=SearchFilters(min_price=0))
    assert hits.total == N - 50
    assert not unpriced & set(hits.ids.tolist())


def test_unknown_names_match_nothing_and_empty_lists_constrain_nothing(catalog: Catalog, hnsw: VectorIndex) -> None:
    nothing = hnsw.search(catalog.queries[0], k=K, filters=SearchFilters(brands=["No Such Brand"]))
    assert nothing.total == 0 and len(nothing.ids) == 0
    everything = hnsw.search(catalog.queries[0], k=K, filters=SearchFilters(brands=[], categories=[]))
    assert everything.total == N and len(everything.ids) == K


def test_fewer_than_k_only_when_fewer_match(catalog: Catalog, hnsw: VectorIndex) -> None:
    filters = SearchFilters(min_price=19.99, max_price=19.99, in_stock=True)
    _, total = catalog.exact(catalog.queries[0], filters, K)
    assert 0 < total < 50
    hits = hnsw.search(catalog.queries[0], k=50, filters=filters)
    assert len(hits.ids) == hits.total == total


# --- batches, queries, vectors ------------------------------------------------------------------------------


def test_search_batch_matches_single_searches(catalog: Catalog, hnsw: VectorIndex) -> None:
    queries = catalog.queries[:6]
    ks = [5, 10, 3, 20, 10, 1]
    filters = [None, FILTERS["category"], None, SearchFilters(), FILTERS["rare brands"], None]
    batch = hnsw.search_batch(queries, k=ks, filters=filters)
    assert len(batch) == 6
    for query, k, case, hits in zip(queries, ks, filters, batch, strict=True):
        single = hnsw.search(query, k=k, filters=case)
        assert hits.ids.tolist() == single.ids.tolist()
        assert hits.total == single.total
        assert len(hits.ids) == k


def test_bad_queries_are_refused(hnsw: VectorIndex) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        hnsw.search(np.ones(DIM + 1, dtype=np.float32), k=K)
    with pytest.raises(ValueError, match="non-zero"):
        hnsw.search(np.zeros(DIM, dtype=np.float32), k=K)
    with pytest.raises(ValueError, match="k must"):
        hnsw.search(np.ones(DIM, dtype=np.float32), k=0)


def test_the_callers_query_is_not_modified(catalog: Catalog, hnsw: VectorIndex) -> None:
    query = catalog.queries[0] * 2.0
    before = query.copy()
    hnsw.search(query, k=K, filters=FILTERS["category"])
    np.testing.assert_array_equal(query, before)


def test_vectors_for_returns_stored_vectors_and_omits_unknown_ids(catalog: Catalog, hnsw: VectorIndex) -> None:
    wanted = [int(catalog.ids[3]), 12345, int(catalog.ids[N - 1]), int(catalog.ids[3])]
    found = hnsw.vectors_for(wanted)
    assert set(found) == {int(catalog.ids[3]), int(catalog.ids[N - 1])}
    np.testing.assert_array_equal(found[int(catalog.ids[N - 1])], catalog.vectors[N - 1])
    assert hnsw.vectors_for([]) == {}


def test_build_refuses_bad_input(catalog: Catalog) -> None:
    attributes = catalog.attributes()
    with pytest.raises(ValueError, match="normalised"):
        VectorIndex.build(catalog.ids, catalog.vectors * 2, attributes, exact_threshold=N + 1, model_tag="t")
    duplicated = catalog.ids.copy()
    duplicated[1] = duplicated[0]
    with pytest.raises(ValueError, match="unique"):
        VectorIndex.build(duplicated, catalog.vectors, attributes, exact_threshold=N + 1, model_tag="t")


def test_an_empty_catalog_builds_and_answers_nothing(tmp_path: Path) -> None:
    attributes = ProductAttributes.from_values(price=[], in_stock=[], brand=[], category=[], merchant=[])
    index = VectorIndex.build([], np.empty((0, DIM), np.float32), attributes, exact_threshold=10, model_tag="t")
    assert index.search(np.ones(DIM, np.float32), k=K).total == 0
    loaded = VectorIndex.load(index.save(tmp_path))
    assert loaded.size == 0 and loaded.search(np.ones(DIM, np.float32), k=K, filters=FILTERS["category"]).total == 0


# --- persistence --------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path, catalog: Catalog, hnsw: VectorIndex) -> None:
    folder = hnsw.save(tmp_path)
    assert folder.parent == tmp_path
    for name in ("index.faiss", "vectors.npy", "ids.npy", "attributes.npz", "vocab.json", "manifest.json"):
        assert (folder / name).is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == folder.name == current_version(tmp_path)
    assert {k: manifest[k] for k in ("model_tag", "dim", "size", "kind")} == {
        "model_tag": "test:1",
        "dim": DIM,
        "size": N,
        "kind": "hnsw",
    }
    assert manifest["build_seconds"] > 0 and manifest["created_at"]

    loaded = VectorIndex.load_current(tmp_path)
    assert isinstance(loaded.vectors, np.memmap) and not loaded.vectors.flags.writeable
    assert loaded.ids.dtype == np.int64 and loaded.ids.tolist() == catalog.ids.tolist()
    for query in catalog.queries[:10]:
        for filters in (None, FILTERS["everything"], FILTERS["category"]):
            assert loaded.search(query, k=K, filters=filters).ids.tolist() == (
                hnsw.search(query, k=K, filters=filters).ids.tolist()
            )
    np.testing.assert_array_equal(loaded.vectors_for([catalog.ids[9]])[int(catalog.ids[9])], catalog.vectors[9])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left behind"


class _GraphThatLevelsOff:
    """A stand-in for an HNSW graph whose recall levels off at efSearch `enough`: below it, half of each answer
    is wrong; from it on, one answer in 200 is (so the recall's top is 0.995, not 1). Its `storage` holds the
    vectors, as an HNSW graph's does: the exact answers come from there."""

    def __init__(self, vectors: np.ndarray, enough: int) -> None:
        self.vectors, self.enough = vectors, enough
        self.asked: list[int] = []
        self.storage = faiss.IndexFlatIP(vectors.shape[1])
        self.storage.add(vectors)

    def search(self, queries: np.ndarray, k: int, *, params: Any) -> tuple[np.ndarray, np.ndarray]:
        self.asked.append(params.efSearch)
        rows = np.argsort(-(queries @ self.vectors.T), axis=1)[:, :k]
        wrong = len(self.vectors) - 1 - np.arange(k)  # rows that are nobody's nearest here
        if params.efSearch < self.enough:
            rows[:, k // 2 :] = wrong[k // 2 :]
        else:
            rows[::20, 0] = wrong[0]
        return np.zeros(rows.shape, np.float32), rows


def test_calibration_picks_the_smallest_ef_search_within_the_slack_of_the_top(catalog: Catalog) -> None:
    vectors = catalog.vectors[:2000]
    graph = _GraphThatLevelsOff(vectors, enough=96)
    ef_search, recall = calibrate_ef_search(graph, vectors)
    assert graph.asked == list(EF_LADDER)
    assert ef_search == 96 and recall == pytest.approx(0.995, abs=EF_RECALL_SLACK)


def test_an_hnsw_build_searches_with_its_calibrated_ef_search(
    tmp_path: Path, flat: VectorIndex, hnsw: VectorIndex
) -> None:
    assert hnsw.manifest.ef_search in EF_LADDER and (hnsw.manifest.ef_search_recall or 0) >= 0.9
    assert hnsw.tuning.ef_search == hnsw.manifest.ef_search
    assert flat.manifest.ef_search is None and flat.tuning == SearchTuning()
    hnsw.save(tmp_path)
    assert VectorIndex.load_current(tmp_path).tuning.ef_search == hnsw.manifest.ef_search
    given = SearchTuning(ef_search=512)
    assert VectorIndex.load_current(tmp_path, tuning=given).tuning == given  # a caller's tuning wins
    manifest = json.loads((tmp_path / hnsw.manifest.version / "manifest.json").read_text())
    del manifest["ef_search"], manifest["ef_search_recall"]  # built before the calibration
    (tmp_path / hnsw.manifest.version / "manifest.json").write_text(json.dumps(manifest))
    assert VectorIndex.load_current(tmp_path).tuning == SearchTuning()


def test_each_save_is_a_new_current_version(tmp_path: Path, flat: VectorIndex, hnsw: VectorIndex) -> None:
    assert current_version(tmp_path) is None
    with pytest.raises(FileNotFoundError):
        VectorIndex.load_current(tmp_path)
    first = flat.save(tmp_path).name
    second = hnsw.save(tmp_path).name
    assert first < second, "versions sort by age"
    assert list_versions(tmp_path) == [first, second]
    assert (tmp_path / CURRENT_FILE).read_text().strip() == second
    assert VectorIndex.load_current(tmp_path).kind == "hnsw"

    set_current(tmp_path, first)  # roll back
    assert VectorIndex.load_current(tmp_path).kind == "flat"
    with pytest.raises(FileNotFoundError):
        set_current(tmp_path, "20000101T000000000000Z-deadbeef")

    third = flat.save(tmp_path).name
    set_current(tmp_path, second)
    assert prune_versions(tmp_path, keep=1) == [first]  # the newest and CURRENT stay
    assert list_versions(tmp_path) == [second, third]


# --- the shared table of filter cases (tests/filter_cases.py) -----------------------------------------------


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def table_index(request: pytest.FixtureRequest) -> VectorIndex:
    rows = filter_cases.catalog()
    vectors = np.random.default_rng(7).standard_normal((len(rows), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    attributes = ProductAttributes.from_values(
        price=[float(row["search_price"]) for row in rows],
        in_stock=[row["in_stock"] for row in rows],
        brand=[row["brand_name"] for row in rows],
        category=[row["category_name"] for row in rows],
        merchant=[row["merchant_name"] for row in rows],
    )
    threshold = 1 if request.param == "hnsw" else len(rows) + 1
    ids = [row["id"] for row in rows]
    index = VectorIndex.build(ids, vectors, attributes, exact_threshold=threshold, model_tag="t")
    assert index.kind == request.param
    return index


@pytest.mark.parametrize("case", filter_cases.CASES, ids=str)
def test_the_filter_table(case: filter_cases.FilterCase, table_index: VectorIndex) -> None:
    filters = None if case.filters is None else SearchFilters.model_validate(case.filters)
    query = np.ones(table_index.dim, dtype=np.float32)
    hits = table_index.search(query, k=len(filter_cases.ALL), filters=filters)
    assert (set(hits.ids.tolist()), hits.total) == (case.expected, len(case.expected))
    [batched] = table_index.search_batch(query.reshape(1, -1), k=len(filter_cases.ALL), filters=[filters])
    assert set(batched.ids.tolist()) == case.expected
