"""Relevance judgements from the catalog's own attributes, and the metrics computed from them.

Each benchmark query (queries.tsv) states what would answer it: article types (`types`; `related` types half
answer it), and optionally colours, who it is for, brands and a price range. A product's grade:

    2   its article type is one of `types` and it has every stated attribute (colour, audience, brand)
    1   its type is one of `types` but an attribute differs, or its type is `related` with every attribute
    0   anything else, and any product outside a price range the words state

Truth comes from styles.csv (articleType, baseColour, gender) and the Awin feed (brand, price), joined on the
product id. Unisex products count for men and for women. Metrics: NDCG@10 with gain 2^grade - 1 against the
ideal ordering of the whole catalog, and recall@50 of the products graded >= 1, capped (divided by
min(50, number of such products)) so that a query with 500 good answers can still score 1.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CATALOG_DIR = REPO.parent / "shared" / "data" / "fashion-product-images"
QUERIES_FILE = HERE / "queries.tsv"
HARD_QUERIES_FILE = HERE / "queries_hard.tsv"  # issue 14's hard splits; hard-frozen is never tuned on

AUDIENCE_MATCHES = {
    "Men": {"Men", "Unisex"},
    "Women": {"Women", "Unisex"},
    "Girls": {"Girls"},
    "Boys": {"Boys"},
}


@dataclass(frozen=True)
class Product:
    id: int
    article_type: str
    colour: str
    gender: str
    name: str
    brand: str
    price: float


@dataclass(frozen=True)
class Query:
    split: str
    text: str
    types: frozenset[str]
    related: frozenset[str]
    colours: frozenset[str]
    genders: frozenset[str]
    brands: tuple[str, ...]
    min_price: float | None
    max_price: float | None


def _set(cell: str) -> frozenset[str]:
    return frozenset(part.strip() for part in cell.split("|") if part.strip())


def _price(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


def load_queries(*paths: Path) -> list[Query]:
    """The queries of `paths` (default: queries.tsv, then queries_hard.tsv)."""
    rows = [row for path in paths or (QUERIES_FILE, HARD_QUERIES_FILE) for row in _rows(path)]
    queries = [
        Query(
            split=row["split"],
            text=row["query"],
            types=_set(row["types"]),
            related=_set(row["related"]),
            colours=_set(row["colours"]),
            genders=_set(row["genders"]),
            brands=tuple(sorted(_set(row["brands"]))),
            min_price=_price(row["min_price"]),
            max_price=_price(row["max_price"]),
        )
        for row in rows
    ]
    texts = [query.text for query in queries]
    if len(set(texts)) != len(texts):
        raise ValueError("queries.tsv has a query twice")
    return queries


def _rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def load_catalog(directory: Path = CATALOG_DIR) -> dict[int, Product]:
    styles = directory / "styles.csv"
    feed = directory / "awin-feed.csv"
    if not styles.is_file() or not feed.is_file():
        raise SystemExit(f"the fashion catalog is missing under {directory} (../shared/data beside the repository)")
    with feed.open(encoding="utf-8", newline="") as handle:
        offers = {int(row["aw_product_id"]): row for row in csv.DictReader(handle)}
    catalog = {}
    with styles.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            product_id = int(row["id"])
            offer = offers.get(product_id)
            if offer is None:
                continue
            catalog[product_id] = Product(
                id=product_id,
                article_type=row["articleType"],
                colour=row["baseColour"],
                gender=row["gender"],
                name=row["productDisplayName"],
                brand=offer["brand_name"],
                price=float(offer["search_price"]),
            )
    return catalog


def grade(query: Query, product: Product) -> int:
    if query.min_price is not None and product.price < query.min_price:
        return 0
    if query.max_price is not None and product.price > query.max_price:
        return 0
    attributes_match = (
        (not query.colours or product.colour in query.colours)
        and (not query.genders or any(product.gender in AUDIENCE_MATCHES[g] for g in query.genders))
        and (not query.brands or any(_has_brand(product, brand) for brand in query.brands))
    )
    if product.article_type in query.types:
        return 2 if attributes_match else 1
    if product.article_type in query.related:
        return 1 if attributes_match else 0
    return 0


def _has_brand(product: Product, brand: str) -> bool:
    wanted = brand.casefold()
    return product.brand.casefold() == wanted or product.name.casefold().startswith(wanted)


def grades(query: Query, catalog: Mapping[int, Product]) -> dict[int, int]:
    """Every product with a grade above 0."""
    return {pid: g for pid, product in catalog.items() if (g := grade(query, product)) > 0}


def _dcg(gains: Sequence[int]) -> float:
    return sum((2**g - 1) / math.log2(position + 2) for position, g in enumerate(gains))


def ndcg_at(ranked: Sequence[int], judged: Mapping[int, int], k: int = 10) -> float:
    ideal = _dcg(sorted(judged.values(), reverse=True)[:k])
    if ideal == 0:
        return 1.0 if not ranked else 0.0  # nothing relevant exists: an empty answer is the right one
    return _dcg([judged.get(pid, 0) for pid in ranked[:k]]) / ideal


def recall_at(ranked: Sequence[int], judged: Mapping[int, int], k: int = 50) -> float:
    relevant = {pid for pid, g in judged.items() if g >= 1}
    if not relevant:
        return 1.0
    return len(relevant & set(ranked[:k])) / min(k, len(relevant))
