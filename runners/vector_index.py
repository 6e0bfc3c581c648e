"""The product vector index: ids, vectors, filter attributes, and a filter-aware search plan (faiss + numpy).

Vectors are float32 and L2-normalised, so inner product is cosine similarity: higher score, more similar.
Below `exact_threshold` products the index is exact (IndexFlatIP); at or above it, HNSW (IndexHNSWFlat,
inner product). Row i of every array (ids, vectors, attributes) is faiss label i.

Why filters are applied inside the search and not after it: a post-filtered top-k comes back short (or empty)
whenever the filter is selective, and the caller asked for k. So `search` plans each filtered query:

    1. Select the matching rows with vectorised numpy. Each condition knows its exact count up front (a price
       range is two `searchsorted` on a price-sorted copy; a brand/category/merchant set is the sum of its
       posting-list lengths), so the most selective condition drives: its rows are gathered directly and the
       others are tested on those rows only. When no condition is selective, the whole columns are ANDed.
       `total` is the number of matching products, exactly.
    2. Few matches (<= `SearchTuning.exact_subset_max_rows`): score just those rows exactly against the
       query (recall 1.0; cost grows with the number of rows, not with the catalog).
    3. Most of the catalog matching (HNSW, >= `post_filter_min_fraction`): an unfiltered graph search for
       a few times k / fraction candidates, the matching ones kept. The filter then costs almost nothing,
       and recall is the unfiltered search's.
    4. Otherwise: the ANN index with an IDSelectorBitmap, so graph search only admits matching rows to
       the results, and efSearch widened in inverse proportion to the matching fraction (capped), because
       the share of visited nodes that may enter the results shrinks with it.
       With the exact (flat) index, step 4 is an exact scan that skips non-matching rows.

Either way a filtered query returns k results whenever at least k products match (post-filtered candidates
that come up short go to step 4, and a graph walk that comes back short is answered by step 2 instead).
The thresholds in `SearchTuning` are set from loadtests/bench_index.py (1M x 512 on a 2-core box; see
reports/).

A known limit of step 4: when the matching products are correlated with the vectors (a category) and the
query is far from all of them (a dress query filtered to shoes), the walk explores the query's own region,
where nothing matches, and recall drops far below the target; widening efSearch or seeding the walk from
sampled matching rows helps little (measured). Only a near-exhaustive scan finds that top-k, and at ~0.4 us
per row that is ~40 ms for 100k matching rows. In the common case the query lies near what the filter keeps,
and recall holds.

On disk (`save`): root/<version>/ holds index.faiss, vectors.npy, ids.npy, attributes.npz, vocab.json and
manifest.json, written to a hidden temporary folder and renamed into place; root/CURRENT is a one-line text
file naming the live version, replaced atomically (write + os.replace) after the folder is complete. A
reader (the index service) therefore sees either the old version or the new one, never a half-written one.
Versions are `<UTC timestamp to the microsecond>-<8 hex of a content hash>`, so they sort by age.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import mmap
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from domain.filters import SearchFilters

Kind = Literal["flat", "hnsw"]
CATEGORICAL_FIELDS = ("brand", "category", "merchant")
CATALOG_COLUMNS = {"brand_name": "brand", "category_name": "category", "merchant_name": "merchant"}
CURRENT_FILE = "CURRENT"
FORMAT_VERSION = 1
HNSW_M = 32
# Build time grows about linearly with efConstruction: at 64, 1M x 512 takes ~6 min on 2 free cores (12 on
# the shared box); the recall target is then met at search time by efSearch (loadtests/bench_index.py).
HNSW_EF_CONSTRUCTION = 64
# efSearch is chosen per index when it is built (`calibrate_ef_search`): the smallest of these whose recall is
# within EF_RECALL_SLACK of the top one's (SearchTuning's default, measured right for 1M) on sample queries. A
# graph's recall levels off at an efSearch that grows with the catalog: at 100k x 512 it is flat from ~96 on,
# where 256 costs 2.5x the CPU of 96 for no recall (loadtests/README.md).
EF_LADDER = (32, 48, 64, 96, 128, 192, 256)
EF_RECALL_SLACK = 0.005
CALIBRATION_QUERIES = 200
# Sample queries are stored vectors moved by Gaussian noise of this scale per dimension (cosine ~0.65 to their
# product at 512-d): a shopper's query lies near products without being one; the vectors themselves would be
# found at once and flatter a small efSearch.
CALIBRATION_NOISE = 0.05
NORM_TOLERANCE = 1e-3
ADD_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class SearchTuning:
    """Knobs of the filter-aware plan, measured on 1M x 512 (loadtests/bench_index.py, reports/)."""

    # A filter matching at most this many rows is answered by scoring exactly those rows (recall 1.0).
    # A scattered 512-d row costs ~0.45 us to score on the 2-core box (memory latency, not arithmetic; no
    # layout of the vectors serves every filter), so 12k rows is ~5 ms: the most the budget allows.
    exact_subset_max_rows: int = 12_000
    # HNSW efSearch for unfiltered queries (raised to k when k is larger): recall@10 ~0.96 at 1M. An index
    # built with a calibrated efSearch (Manifest.ef_search) uses that instead, unless a tuning is given.
    ef_search: int = 256
    # Filtered HNSW: efSearch = ef_per_result * k / matching_fraction, at least ef_search, at most ef_max.
    # Only matching nodes may enter the results, so the beam must widen as they thin out.
    ef_per_result: float = 3.0
    ef_max: int = 1024
    # A condition matching at most this fraction of the catalog drives the selection (rows, not masks).
    driver_max_fraction: float = 0.125
    # When a filter keeps at least this fraction, HNSW searches unfiltered for `post_filter_overfetch` x
    # k / fraction candidates and keeps the matching ones: as cheap as an unfiltered query and as accurate,
    # where the bitmap walk needed ~3x the time at 50% and fell to recall 0.95 (1M x 512, bench_index.py).
    post_filter_min_fraction: float = 0.25
    post_filter_overfetch: float = 2.0


Plan = Literal["unfiltered", "none-match", "exact-subset", "post-filtered", "filtered-graph", "filtered-flat"]


@dataclass(frozen=True)
class SearchHits:
    ids: np.ndarray  # int64 product ids, most similar first
    scores: np.ndarray  # float32 cosine similarities, descending
    total: int  # products matching the filters (the whole index when unfiltered)
    plan: Plan = "unfiltered"  # how it was answered (metrics, benchmarks)


@dataclass(frozen=True)
class Manifest:
    version: str
    model_tag: str
    dim: int
    size: int
    kind: Kind
    created_at: str
    build_seconds: float
    content_hash: str
    hnsw_m: int | None = None
    ef_construction: int | None = None
    # The efSearch calibrated at build time and its recall@10 on the sample queries (HNSW only; None for flat
    # indexes and for builds older than the calibration, which search with SearchTuning's default).
    ef_search: int | None = None
    ef_search_recall: float | None = None
    # What the index was built from (model + each product's content hash), for `index build --if-stale`.
    catalog_fingerprint: str | None = None
    format: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


# --- attributes -------------------------------------------------------------------------------------------


class ProductAttributes:
    """Per-product filter columns: price (float32, NaN = unknown), in_stock (bool), brand/category/merchant
    as int32 codes (-1 = none) with name -> code vocabularies; plus the sorted views that let a condition
    count and gather its rows without scanning the catalog."""

    def __init__(
        self,
        *,
        price: np.ndarray,
        in_stock: np.ndarray,
        codes: dict[str, np.ndarray],
        vocab: dict[str, list[str]],
    ) -> None:
        self.price = np.ascontiguousarray(price, dtype=np.float32)
        self.in_stock = np.ascontiguousarray(in_stock, dtype=bool)
        n = len(self.price)
        if len(self.in_stock) != n:
            raise ValueError("price and in_stock must have the same length")
        self.codes: dict[str, np.ndarray] = {}
        self.vocab: dict[str, list[str]] = {}
        self.code_of: dict[str, dict[str, int]] = {}
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in CATEGORICAL_FIELDS:
            column = np.ascontiguousarray(codes[name], dtype=np.int32)
            names = list(vocab[name])
            if len(column) != n:
                raise ValueError(f"{name} codes must have one entry per product")
            if n and (column.min() < -1 or column.max() >= len(names)):
                raise ValueError(f"{name} codes must lie in [-1, {len(names)})")
            self.codes[name] = column
            self.vocab[name] = names
            self.code_of[name] = {value: code for code, value in enumerate(names)}
            order = np.argsort(column, kind="stable").astype(np.int64)
            starts = np.searchsorted(column[order], np.arange(len(names) + 1, dtype=np.int32))
            self._postings[name] = (order, starts)
        self._price_order = np.argsort(self.price, kind="stable").astype(np.int64)  # NaN sorts last
        self._price_sorted = self.price[self._price_order]
        self.in_stock_count = int(np.count_nonzero(self.in_stock))

    def __len__(self) -> int:
        return len(self.price)

    @classmethod
    def from_values(
        cls,
        *,
        price: Sequence[float | None] | np.ndarray,
        in_stock: Sequence[bool] | np.ndarray,
        brand: Sequence[str | None],
        category: Sequence[str | None],
        merchant: Sequence[str | None],
    ) -> ProductAttributes:
        """Columns from one value per product; names are kept exactly as the catalog spells them."""
        prices = np.array([np.nan if p is None else float(p) for p in price], dtype=np.float32)
        codes: dict[str, np.ndarray] = {}
        vocab: dict[str, list[str]] = {}
        for name, values in (("brand", brand), ("category", category), ("merchant", merchant)):
            code_of: dict[str, int] = {}
            column = np.empty(len(values), dtype=np.int32)
            for row, value in enumerate(values):
                column[row] = -1 if value is None or value == "" else code_of.setdefault(value, len(code_of))
            codes[name], vocab[name] = column, list(code_of)
        return cls(price=prices, in_stock=np.asarray(in_stock, dtype=bool), codes=codes, vocab=vocab)

    # Conditions, each able to count, gather its rows, test given rows, or mask the whole catalog.
    def conditions(self, filters: SearchFilters) -> list[_Condition]:
        found: list[_Condition] = []
        if filters.min_price is not None or filters.max_price is not None:
            found.append(_PriceCondition(self, filters.min_price, filters.max_price))
        if filters.in_stock is not None:
            found.append(_StockCondition(self, filters.in_stock))
        for column, wanted in filters.names():  # an empty list constrains nothing (domain/filters.py)
            name = CATALOG_COLUMNS[column]
            known = sorted({self.code_of[name][v] for v in wanted if v in self.code_of[name]})
            found.append(_CodeCondition(self, name, np.asarray(known, dtype=np.int32)))
        return found

    def postings(self, name: str, codes: np.ndarray) -> tuple[int, list[np.ndarray]]:
        order, starts = self._postings[name]
        parts = [order[starts[c] : starts[c + 1]] for c in codes.tolist()]
        return sum(len(p) for p in parts), parts

    def price_rows(self, low: np.float32, high: np.float32) -> np.ndarray:
        begin = int(np.searchsorted(self._price_sorted, low, side="left"))
        end = int(np.searchsorted(self._price_sorted, high, side="right"))
        return self._price_order[begin:end]

    def save(self, folder: Path) -> None:
        np.savez(
            folder / "attributes.npz",
            price=self.price,
            in_stock=self.in_stock,
            brand=self.codes["brand"],  # CATEGORICAL_FIELDS, one keyword each
            category=self.codes["category"],
            merchant=self.codes["merchant"],
        )
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> ProductAttributes:
        with np.load(folder / "attributes.npz") as columns:
            price, in_stock = columns["price"], columns["in_stock"]
            codes = {name: columns[name] for name in CATEGORICAL_FIELDS}
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        return cls(price=price, in_stock=in_stock, codes=codes, vocab=vocab)

    def fingerprint(self, digest: Any) -> None:
        for column in (self.price, self.in_stock, *(self.codes[name] for name in CATEGORICAL_FIELDS)):
            digest.update(column.tobytes())
        digest.update(json.dumps(self.vocab, ensure_ascii=False, sort_keys=True).encode("utf-8"))


class _Condition:
    count: int  # exact number of matching products

    def rows(self) -> np.ndarray:
        raise NotImplementedError

    def test(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mask(self) -> np.ndarray:
        raise NotImplementedError


class _PriceCondition(_Condition):
    def __init__(self, attributes: ProductAttributes, low: float | None, high: float | None) -> None:
        # Compare in float32, the stored precision, so a product priced exactly at a bound is inside it.
        self._attributes = attributes
        self._low = np.float32(-np.inf if low is None else low)
        self._high = np.float32(np.inf if high is None else high)
        self._rows = attributes.price_rows(self._low, self._high)
        self.count = len(self._rows)

    def rows(self) -> np.ndarray:
        return self._rows

    def test(self, rows: np.ndarray) -> np.ndarray:
        price: np.ndarray = self._attributes.price[rows]
        return (price >= self._low) & (price <= self._high)

    def mask(self) -> np.ndarray:
        price = self._attributes.price
        return (price >= self._low) & (price <= self._high)


class _StockCondition(_Condition):
    def __init__(self, attributes: ProductAttributes, wanted: bool) -> None:
        self._attributes = attributes
        self._wanted = wanted
        in_stock = attributes.in_stock_count
        self.count = in_stock if wanted else len(attributes) - in_stock

    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.mask())

    def test(self, rows: np.ndarray) -> np.ndarray:
        values: np.ndarray = self._attributes.in_stock[rows]
        return values if self._wanted else ~values

    def mask(self) -> np.ndarray:
        values = self._attributes.in_stock
        return values.copy() if self._wanted else ~values


class _CodeCondition(_Condition):
    def __init__(self, attributes: ProductAttributes, name: str, codes: np.ndarray) -> None:
        self._column = attributes.codes[name]
        self._codes = codes
        self.count, self._parts = attributes.postings(name, codes)
        self._lookup = np.zeros(len(attributes.vocab[name]) + 1, dtype=bool)  # last slot: code -1
        self._lookup[codes] = True

    def rows(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.empty(0, dtype=np.int64)

    def test(self, rows: np.ndarray) -> np.ndarray:
        matching: np.ndarray = self._lookup[self._column[rows]]
        return matching

    def mask(self) -> np.ndarray:
        if len(self._codes) <= 2:  # equality is faster than a table lookup over the whole column
            result = self._column == self._codes[0] if len(self._codes) else np.zeros(len(self._column), bool)
            for code in self._codes[1:]:
                result |= self._column == code
            return result
        matching: np.ndarray = self._lookup[self._column]
        return matching


@dataclass
class _Selection:
    total: int
    rows: np.ndarray | None = None  # sorted row numbers, when gathered directly
    mask: np.ndarray | None = None  # bool over all rows, when built column-wise
    condition: _Condition | None = None  # a lone broad condition: rows and mask are built only if needed

    def as_rows(self) -> np.ndarray:
        if self.rows is None:
            if self.mask is None:
                assert self.condition is not None
                self.mask = self.condition.mask()
            self.rows = np.flatnonzero(self.mask)
        return self.rows

    def as_mask(self, size: int) -> np.ndarray:
        if self.mask is None:
            if self.condition is not None:
                self.mask = self.condition.mask()
            else:
                assert self.rows is not None
                self.mask = np.zeros(size, dtype=bool)
                self.mask[self.rows] = True
        return self.mask

    def test(self, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` match, without building the whole mask when it is not built yet."""
        if self.mask is not None:
            matching: np.ndarray = self.mask[rows]
            return matching
        if self.condition is not None:
            return self.condition.test(rows)
        assert self.rows is not None
        return np.isin(rows, self.rows)


# --- the index --------------------------------------------------------------------------------------------


@dataclass
class VectorIndex:
    ids: np.ndarray
    vectors: np.ndarray
    attributes: ProductAttributes
    index: Any  # faiss.IndexFlatIP | faiss.IndexHNSWFlat
    manifest: Manifest
    tuning: SearchTuning = field(default_factory=SearchTuning)
    path: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.vectors.shape[0] != n or len(self.attributes) != n or self.index.ntotal != n:
            raise ValueError("ids, vectors, attributes and the faiss index must have one row per product")
        self._id_order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[self._id_order]
        # Exact scans read faiss's own in-memory copy of the vectors: resident, so a scan never waits on
        # pages of the memory-mapped vectors.npy (which serves `vectors_for`).
        storage = self.index.storage if self.kind == "hnsw" else self.index
        flat = faiss.downcast_index(storage)
        self._scan = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim) if n else self.vectors

    # --- facts ---
    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.manifest.dim)

    @property
    def kind(self) -> Kind:
        return self.manifest.kind

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def model_tag(self) -> str:
        return self.manifest.model_tag

    # --- building ---
    @classmethod
    def build(
        cls,
        ids: np.ndarray | Sequence[int],
        vectors: np.ndarray,
        attributes: ProductAttributes,
        *,
        exact_threshold: int,
        model_tag: str,
        hnsw_m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        tuning: SearchTuning | None = None,
        catalog_fingerprint: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VectorIndex:
        """Index `vectors` (n x d float32, rows L2-normalised; a memmap is fine): exact below
        `exact_threshold` products, HNSW at or above it. `progress(done, n)` is called as rows are added."""
        started = time.perf_counter()
        id_array = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise ValueError("vectors must be a 2-d float32 array")
        n, dim = vectors.shape
        if len(id_array) != n or len(attributes) != n:
            raise ValueError("ids, vectors and attributes must have one row per product")
        if len(np.unique(id_array)) != n:
            raise ValueError("product ids must be unique")
        kind: Kind = "hnsw" if n >= exact_threshold else "flat"
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
        else:
            index = faiss.IndexFlatIP(dim)
        for begin in range(0, n, ADD_CHUNK_ROWS):
            chunk = np.ascontiguousarray(vectors[begin : begin + ADD_CHUNK_ROWS])
            norms = np.linalg.norm(chunk, axis=1)
            if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
                bad = begin + int(np.argmax(np.abs(norms - 1.0)))
                raise ValueError(f"vector of product {id_array[bad]} is not L2-normalised (norm {norms.max()})")
            index.add(chunk)
            if progress is not None:
                progress(begin + len(chunk), n)
        ef_search, ef_recall = calibrate_ef_search(index, vectors) if kind == "hnsw" and n else (None, None)
        manifest = Manifest(
            version="",
            model_tag=model_tag,
            dim=dim,
            size=n,
            kind=kind,
            created_at="",
            build_seconds=round(time.perf_counter() - started, 3),
            content_hash="",
            hnsw_m=hnsw_m if kind == "hnsw" else None,
            ef_construction=ef_construction if kind == "hnsw" else None,
            ef_search=ef_search,
            ef_search_recall=ef_recall,
            catalog_fingerprint=catalog_fingerprint,
        )
        return cls(id_array, vectors, attributes, index, manifest, tuning or _tuning_for(manifest))

    # --- searching ---
    def search(self, query: np.ndarray, *, k: int, filters: SearchFilters | None = None) -> SearchHits:
        """The k products most similar to `query`, among those matching `filters`, best first."""
        if k < 1:
            raise ValueError("k must be at least 1")
        q = self._prepare(query)
        with _one_omp_thread():  # one query: a thread team only adds waiting (see _one_omp_thread)
            return self._search_one(q, k, filters)

    def _search_one(self, q: np.ndarray, k: int, filters: SearchFilters | None) -> SearchHits:
        if filters is None or filters.is_empty:
            return self._unfiltered(q, k)[0]
        selection = self._select(filters)
        if selection.total == 0:
            return _empty(0, "none-match")
        if selection.total == self.size:
            return self._unfiltered(q, k)[0]
        if selection.total <= self.tuning.exact_subset_max_rows:
            return self._scan_rows(q, selection.as_rows(), k, selection.total)
        if self.kind == "hnsw" and selection.total >= self.tuning.post_filter_min_fraction * self.size:
            hits = self._post_filtered(q, selection, k)
            if hits is not None:
                return hits
        return self._search_selected(q, selection, k)

    def _post_filtered(self, q: np.ndarray, selection: _Selection, k: int) -> SearchHits | None:
        """Unfiltered candidates, the matching ones kept; None when too few match (the caller walks the bitmap)."""
        fraction = selection.total / self.size
        depth = min(self.size, int(np.ceil(self.tuning.post_filter_overfetch * k / fraction)))
        params = faiss.SearchParametersHNSW(efSearch=max(self.tuning.ef_search, depth))
        scores, rows = self.index.search(q.reshape(1, -1), depth, params=params)
        rows, scores = rows[0], scores[0]
        valid = rows >= 0
        rows, scores = rows[valid], scores[valid]
        keep = selection.test(rows)
        if np.count_nonzero(keep) < min(k, selection.total):
            return None
        return SearchHits(self.ids[rows[keep][:k]], scores[keep][:k].astype(np.float32, copy=False),
                          selection.total, "post-filtered")  # fmt: skip

    def search_batch(
        self,
        queries: np.ndarray,
        *,
        k: int | Sequence[int],
        filters: Sequence[SearchFilters | None] | None = None,
    ) -> list[SearchHits]:
        """`search` for many queries: the unfiltered ones go to faiss in one call, the filtered one by one."""
        q = self._prepare(queries)
        count = len(q)
        ks = [k] * count if isinstance(k, int) else list(k)
        wanted = list(filters) if filters is not None else [None] * count
        if len(ks) != count or len(wanted) != count:
            raise ValueError("k and filters must have one entry per query")
        if any(each < 1 for each in ks):
            raise ValueError("k must be at least 1")
        results: list[SearchHits | None] = [None] * count
        plain = [i for i, each in enumerate(wanted) if each is None or each.is_empty]
        if plain:
            deepest = max(ks[i] for i in plain)
            for i, hits in zip(plain, self._unfiltered(q[plain], deepest), strict=True):
                results[i] = SearchHits(hits.ids[: ks[i]], hits.scores[: ks[i]], hits.total, hits.plan)
        for i in range(count):
            if results[i] is None:
                results[i] = self.search(q[i], k=ks[i], filters=wanted[i])
        return [hits for hits in results if hits is not None]

    def vectors_for(self, ids: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """Stored vectors by product id (copies); ids not in the index are left out."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(wanted) or not self.size:
            return {}
        positions = np.minimum(np.searchsorted(self._sorted_ids, wanted), self.size - 1)
        found = self._sorted_ids[positions] == wanted
        rows = self._id_order[positions[found]]
        return {
            int(pid): np.array(self.vectors[row], dtype=np.float32)
            for pid, row in zip(wanted[found].tolist(), rows.tolist(), strict=True)
        }

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        q = q.reshape(1, -1) if single else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have {self.dim} dimensions, got shape {np.shape(queries)}")
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError("query vectors must be finite and non-zero")
        q = np.ascontiguousarray(q / norms)  # a copy: never normalise the caller's array in place
        return q[0] if single else q

    def _unfiltered(self, q: np.ndarray, k: int) -> list[SearchHits]:
        batch = q.reshape(-1, self.dim)
        if not self.size:
            return [_empty(0) for _ in batch]
        params = None
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.tuning.ef_search, k))
        with _one_omp_thread() if len(batch) == 1 else nullcontext():
            scores, rows = self.index.search(batch, min(k, self.size), params=params)
        return [self._hits(r, s, self.size) for r, s in zip(rows, scores, strict=True)]

    def _select(self, filters: SearchFilters) -> _Selection:
        conditions = sorted(self.attributes.conditions(filters), key=lambda c: c.count)
        if not conditions:
            return _Selection(total=self.size, rows=None, mask=np.ones(self.size, dtype=bool))
        driver, others = conditions[0], conditions[1:]
        if driver.count == 0:
            return _Selection(total=0, rows=np.empty(0, dtype=np.int64))
        if not others and driver.count > self.tuning.driver_max_fraction * self.size:
            # Its count is exact already; a broad filter is often answered by testing a few candidates.
            return _Selection(total=driver.count, condition=driver)
        if driver.count <= self.tuning.driver_max_fraction * self.size:
            rows = driver.rows()
            for condition in others:
                rows = rows[condition.test(rows)]
            rows = np.sort(rows)  # ascending rows: the scan walks memory forwards
            return _Selection(total=len(rows), rows=rows)
        mask = driver.mask()
        for condition in others:
            mask &= condition.mask()
        return _Selection(total=int(np.count_nonzero(mask)), mask=mask)

    def _scan_rows(self, q: np.ndarray, rows: np.ndarray, k: int, total: int) -> SearchHits:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        scores = np.empty(len(rows), dtype=np.float32)
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(scores),
            faiss.swig_ptr(q),
            faiss.swig_ptr(self._scan),
            faiss.swig_ptr(rows),
            self.dim,
            1,
            len(rows),
        )
        if len(rows) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return SearchHits(self.ids[rows[order]], scores[order], total, "exact-subset")

    def _search_selected(self, q: np.ndarray, selection: _Selection, k: int) -> SearchHits:
        bitmap = np.packbits(selection.as_mask(self.size), bitorder="little")
        # `bitmap` must outlive the search: the selector only holds a raw pointer to it.
        selector = faiss.IDSelectorBitmap(self.size, faiss.swig_ptr(bitmap))
        if self.kind == "hnsw":
            fraction = selection.total / self.size
            ef = int(min(self.tuning.ef_max, max(self.tuning.ef_search, self.tuning.ef_per_result * k / fraction)))
            params: Any = faiss.SearchParametersHNSW(efSearch=max(ef, k), sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = self.index.search(q.reshape(1, -1), min(k, selection.total), params=params)
        hits = self._hits(
            rows[0], scores[0], selection.total, "filtered-graph" if self.kind == "hnsw" else "filtered-flat"
        )
        del bitmap
        if len(hits.ids) < min(k, selection.total):  # the graph walk ran dry: answer exactly instead
            return self._scan_rows(q, selection.as_rows(), k, selection.total)
        return hits

    def _hits(self, rows: np.ndarray, scores: np.ndarray, total: int, plan: Plan = "unfiltered") -> SearchHits:
        keep = rows >= 0
        return SearchHits(self.ids[rows[keep]], scores[keep].astype(np.float32, copy=False), total, plan)

    # --- persistence ---
    def save(self, root: Path) -> Path:
        """Write a new version folder under `root` and make it CURRENT; returns the folder."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        created = datetime.now(UTC)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{self.model_tag}|{self.kind}|{self.dim}".encode())
        digest.update(self.ids.tobytes())
        self.attributes.fingerprint(digest)
        for begin in range(0, self.size, ADD_CHUNK_ROWS):
            digest.update(np.ascontiguousarray(self.vectors[begin : begin + ADD_CHUNK_ROWS]).tobytes())
        content_hash = digest.hexdigest()
        version = f"{created.strftime('%Y%m%dT%H%M%S%fZ')}-{content_hash[:8]}"
        manifest = replace(self.manifest, version=version, created_at=created.isoformat(), content_hash=content_hash)
        staging = root / f".tmp-{version}-{os.getpid()}"
        staging.mkdir()
        try:
            faiss.write_index(self.index, str(staging / "index.faiss"))
            np.save(staging / "ids.npy", self.ids)
            _save_npy_chunked(staging / "vectors.npy", self.vectors)
            self.attributes.save(staging)
            (staging / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
            for item in staging.iterdir():
                _fsync(item)
            _fsync(staging)
            final = root / version
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        set_current(root, version)
        self.manifest = manifest
        self.path = final
        return final

    @classmethod
    def load(cls, path: Path, *, tuning: SearchTuning | None = None) -> VectorIndex:
        """Load one version folder; vectors.npy is memory-mapped read-only."""
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.format != FORMAT_VERSION:
            raise ValueError(f"{path}: index format {manifest.format}, this code reads {FORMAT_VERSION}")
        ids = np.load(path / "ids.npy")
        vectors = np.load(path / "vectors.npy", mmap_mode="r")
        attributes = ProductAttributes.load(path)
        # Memory-mapped, not read: loading takes milliseconds instead of seconds (no GIL stalls in the
        # service while it swaps versions), the pages are shared with the page cache instead of doubling
        # anonymous memory during a swap, and the first searches page in what they touch.
        index = faiss.read_index(str(path / "index.faiss"), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        if vectors.shape != (manifest.size, manifest.dim) or len(ids) != manifest.size:
            raise ValueError(f"{path}: files disagree with manifest.json (size {manifest.size}, dim {manifest.dim})")
        return cls(ids, vectors, attributes, index, manifest, tuning or _tuning_for(manifest), path)

    def warm(self) -> None:
        """Page in the memory-mapped vectors and the top of the graph before serving.

        A mapped page costs a fault the first time it is touched: a graph search touches thousands of
        scattered vectors, so on a cold mapping it costs several times its warm CPU time (measured: p95 from
        ~3 ms to ~8 ms). One MADV_POPULATE_READ maps them all in the kernel, without the GIL.
        """
        if not self.size:
            return
        _populate(self._scan)
        rows = np.linspace(0, self.size - 1, num=min(8, self.size)).astype(np.int64)
        self.search_batch(np.array(self._scan[rows]), k=10)

    @classmethod
    def load_current(cls, root: Path, *, tuning: SearchTuning | None = None) -> VectorIndex:
        version = current_version(root)
        if version is None:
            raise FileNotFoundError(f"no index version is CURRENT under {root}")
        return cls.load(Path(root) / version, tuning=tuning)


# --- efSearch calibration ---------------------------------------------------------------------------------


def calibrate_ef_search(index: Any, vectors: np.ndarray, *, k: int = 10, seed: int = 0) -> tuple[int, float]:
    """The smallest efSearch of EF_LADDER whose recall@k on sample queries is within EF_RECALL_SLACK of the
    ladder's top, with that recall. Exact answers come from a brute-force scan of the graph's own flat storage
    (a few seconds at 1M x 512); the graph is searched once per rung."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=min(CALIBRATION_QUERIES, n), replace=False))
    queries = np.asarray(vectors[picked], dtype=np.float32)
    queries += rng.normal(0.0, CALIBRATION_NOISE, queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(k, n)
    _, best_rows = faiss.downcast_index(index.storage).search(queries, k)
    recalls = []
    for ef in EF_LADDER:
        _, found = index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=max(ef, k)))
        hits = sum(len(np.intersect1d(got, want)) for got, want in zip(found, best_rows, strict=True))
        recalls.append(hits / best_rows.size)
    enough = recalls[-1] - EF_RECALL_SLACK
    chosen = next(i for i, recall in enumerate(recalls) if recall >= enough)
    return EF_LADDER[chosen], round(recalls[chosen], 4)


def _tuning_for(manifest: Manifest) -> SearchTuning:
    """The default tuning, with the efSearch calibrated when the index was built (if it was)."""
    tuning = SearchTuning()
    return replace(tuning, ef_search=manifest.ef_search) if manifest.ef_search else tuning


# --- versions on disk -------------------------------------------------------------------------------------


def current_version(root: Path) -> str | None:
    """The version root/CURRENT names, or None when there is none yet."""
    try:
        version = (Path(root) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def read_manifest(folder: Path) -> Manifest:
    return Manifest.from_json(json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8")))


def set_current(root: Path, version: str) -> None:
    """Point root/CURRENT at an existing version, atomically (also how to roll back)."""
    root = Path(root)
    if not (root / version / "manifest.json").is_file():
        raise FileNotFoundError(f"{root / version} is not an index version")
    staging = root / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(version + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, root / CURRENT_FILE)
    _fsync(root)


def list_versions(root: Path) -> list[str]:
    """Complete versions under root, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and (entry / "manifest.json").is_file()
    )


def prune_versions(root: Path, *, keep: int) -> list[str]:
    """Delete all but the `keep` newest versions, never the CURRENT one; returns what was deleted.

    A service still serving a deleted version is unaffected: its index is in memory and its memory-mapped
    vectors stay readable until unmapped (POSIX keeps an open or mapped file's data until the last user)."""
    current = current_version(root)
    versions = list_versions(root)
    doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
    for version in doomed:
        shutil.rmtree(Path(root) / version, ignore_errors=True)
    return doomed


MADV_POPULATE_READ = 22  # Linux 5.14+


def _populate(array: np.ndarray) -> None:
    """Fault in every page of a memory-mapped array (best effort: touch one value per page if madvise fails)."""
    page = mmap.PAGESIZE
    start = array.ctypes.data // page * page
    end = -(-(array.ctypes.data + array.nbytes) // page) * page
    populated = False
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        populated = libc.madvise(start, end - start, MADV_POPULATE_READ) == 0
    if not populated:
        flat = array.reshape(-1)
        flat[:: max(1, page // flat.itemsize)].sum()


@contextmanager
def _one_omp_thread() -> Iterator[None]:
    """Run a one-query faiss call without an OpenMP team: faiss opens a parallel region even for one query,
    and its closing barrier then waits for the other team thread to be scheduled, which on a busy 2-core box
    costs several ms of waiting (and of spinning). The setting is per calling thread in OpenMP."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _empty(total: int, plan: Plan = "unfiltered") -> SearchHits:
    return SearchHits(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), total, plan)


def _save_npy_chunked(path: Path, array: np.ndarray) -> None:
    """np.save, but streaming a (possibly memory-mapped) array in chunks."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    for begin in range(0, len(array), ADD_CHUNK_ROWS):
        out[begin : begin + ADD_CHUNK_ROWS] = array[begin : begin + ADD_CHUNK_ROWS]
    out.flush()
    del out


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
