"""Building the index from the catalog: what `vitrine index build` does, as a library beside the index.

Products stream from the database a page at a time (adapters/db/products.py) and their vectors go straight
into a preallocated memory-mapped file, so memory holds one page of products (and of images) at a time
however large the catalog. The text embedded for a product is `domain.product_text.product_document`; the
encoder is `runners.encoder_model.load_encoder`, the same loader and normaliser the encoder service uses for
queries.

Text and image: when the model has an image tower and a product's photo can be read (a local path, or an
http(s) URL fetched with a short timeout; merchant_image_url, then aw_image_url, then large_image), the
product's vector is normalize(text + image). Both are unit vectors, so the sum is their bisector: equally
close to the text and the photo, which lets one index serve text queries (text tower) and image queries
(image tower) without one modality drowning the other; CLIP's two towers are trained to agree, so the sum
keeps what they share. A product whose photo cannot be read falls back to its text vector; those are
counted and reported, never fatal.

Then `build_index` builds runners/vector_index.py's index (exact below the threshold, HNSW at or above it);
the caller saves it as a new version and prunes old ones. `index_is_current` tells whether CURRENT was built
from the same active products (each product's content hash) with the same model, for `--if-stale`.

Used by commands/index.py (the `vitrine index build` command) and loadtests/prepare_index.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from domain.product_text import product_document
from domain.settings import Settings

if TYPE_CHECKING:
    import httpx
    from PIL import Image
    from sqlalchemy.ext.asyncio import AsyncEngine

    from domain.catalog_feed import ProductRecord
    from runners.encoder_model import Encoder
    from runners.vector_index import ProductAttributes, VectorIndex

IMAGE_FIELDS = ("merchant_image_url", "aw_image_url", "large_image")
IMAGE_TIMEOUT_S = 5.0
IMAGE_MAX_BYTES = 15 * 1024 * 1024
IMAGE_MAX_SIDE = 640  # CLIP sees 224 px; a batch of full-size photos would not fit in memory
IMAGE_FETCHES = 16  # concurrent downloads

# progress(done, total): called as products are encoded or rows indexed.
ProgressCallback = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


@dataclass
class ImageStats:
    used: int = 0
    unreadable: int = 0
    missing: int = 0
    examples: list[str] = field(default_factory=list)
    skipped: str | None = None  # why images were not used at all

    def summary(self) -> str:
        if self.skipped:
            return f"images: not used ({self.skipped})"
        return f"images: {self.used} used, {self.unreadable} unreadable (text only), {self.missing} without one"

    def failed(self, what: str) -> None:
        self.unreadable += 1
        if len(self.examples) < 5:
            self.examples.append(what)


@dataclass
class Encoded:
    model_tag: str
    vectors: np.ndarray  # rows [0, len(ids)) of a memory-mapped file
    ids: list[int] = field(default_factory=list)
    price: list[float | None] = field(default_factory=list)
    in_stock: list[bool] = field(default_factory=list)
    brand: list[str | None] = field(default_factory=list)
    category: list[str | None] = field(default_factory=list)
    merchant: list[str | None] = field(default_factory=list)
    images: ImageStats = field(default_factory=ImageStats)
    catalog_fingerprint: str = ""
    seconds: float = 0.0

    def add_rows(self, page: Sequence[ProductRecord]) -> None:
        """The ids and filter attributes of a page of products, in the order their vectors were written."""
        for product in page:
            self.ids.append(product.id)
            self.price.append(float(product.search_price) if product.search_price is not None else None)
            self.in_stock.append(bool(product.in_stock))
            self.brand.append(product.brand_name)
            self.category.append(product.category_name)
            self.merchant.append(product.merchant_name)

    def attributes(self) -> ProductAttributes:
        """The filter columns of the encoded products, row for row."""
        from runners.vector_index import ProductAttributes

        return ProductAttributes.from_values(
            price=self.price, in_stock=self.in_stock, brand=self.brand, category=self.category, merchant=self.merchant
        )


async def encode_catalog(
    settings: Settings,
    root: Path,
    scratch: Path,
    *,
    batch_size: int,
    use_images: bool,
    if_stale: bool,
    progress: ProgressCallback = _no_progress,
) -> Encoded | None:
    """Encode the active catalog into `scratch`; None when `if_stale` and the index under `root` is current.

    Refuses (DependencyDown) a database that is not at this code's head revision, as `catalog import` does.
    """
    from adapters.db import migrate
    from adapters.db.engine import create_engine
    from adapters.db.products import count_active_products
    from runners.encoder_model import load_encoder

    engine = create_engine(settings)
    try:
        await migrate.require_schema(engine)
        # The staleness check needs only the model's tag, not the model: loading torch takes seconds.
        if if_stale and await index_is_current(engine, root, model_tag_to_load(settings), batch_size=batch_size):
            return None
        expected = await count_active_products(engine)
        encoder = await asyncio.to_thread(load_encoder, device=settings.encoder_device)
        return await encode_products(
            engine, encoder, scratch, expected=expected, batch_size=batch_size, use_images=use_images, progress=progress
        )
    finally:
        await engine.dispose()


def model_tag_to_load(settings: Settings) -> str:
    """The tag `load_encoder` will load ("latest" resolved), as it records it (runners/encoder_model.py)."""
    import bentoml

    return str(bentoml.models.get(settings.encoder_model_tag).tag)


async def index_is_current(engine: AsyncEngine, root: Path, model_tag: str, *, batch_size: int) -> bool:
    """Whether CURRENT under `root` was built with `model_tag` from exactly the active products."""
    from adapters.db.products import iter_active_products
    from runners.vector_index import current_version, read_manifest

    version = current_version(root)
    if version is None:
        return False
    manifest = read_manifest(root / version)
    if manifest.model_tag != model_tag or manifest.catalog_fingerprint is None:
        return False
    fingerprint = CatalogFingerprint(model_tag)
    async for page in iter_active_products(engine, batch_size=max(batch_size, 1000)):
        fingerprint.add(page)
    return fingerprint.hexdigest() == manifest.catalog_fingerprint


def build_index(
    encoded: Encoded, *, exact_threshold: int, progress: ProgressCallback = _no_progress
) -> VectorIndex:
    """The vector index over what was encoded (not yet saved)."""
    from runners.vector_index import VectorIndex

    return VectorIndex.build(
        encoded.ids,
        encoded.vectors,
        encoded.attributes(),
        exact_threshold=exact_threshold,
        model_tag=encoded.model_tag,
        catalog_fingerprint=encoded.catalog_fingerprint,
        progress=progress,
    )


class CatalogFingerprint:
    """What an index was built from: the model and each active product's content hash, in id order."""

    def __init__(self, model_tag: str) -> None:
        self._digest = hashlib.blake2b(model_tag.encode("utf-8"), digest_size=16)

    def add(self, page: Sequence[ProductRecord]) -> None:
        for product in page:
            self._digest.update(f"{product.id}:{product.content_hash()};".encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def encode_products(
    engine: AsyncEngine,
    encoder: Encoder,
    scratch: Path,
    *,
    expected: int,
    batch_size: int,
    use_images: bool,
    progress: ProgressCallback = _no_progress,
) -> Encoded:
    """Every active product's vector, written into a memory-mapped file under `scratch`."""
    from adapters.db.products import iter_active_products

    started = time.perf_counter()
    scratch.mkdir(parents=True, exist_ok=True)
    store = VectorFile(scratch / "vectors.npy", encoder.dim, capacity=expected + max(64, expected // 100))
    result = Encoded(model_tag=encoder.model_tag, vectors=store.rows(0))
    fingerprint = CatalogFingerprint(encoder.model_tag)
    if not encoder.has_image_tower:
        result.images.skipped = "text-only model"
    elif not use_images:
        result.images.skipped = "--no-images"
    http = _http_client() if result.images.skipped is None else None
    try:
        progress(0, expected)
        async for page in iter_active_products(engine, batch_size=batch_size):
            fingerprint.add(page)
            texts = [product_document(product) for product in page]
            vectors = await asyncio.to_thread(encoder.encode_text, texts)
            if http is not None:
                vectors = await _with_images(encoder, http, page, vectors, result.images)
            store.write(len(result.ids), vectors)
            result.add_rows(page)  # after their vectors: row i of both is product i
            progress(len(result.ids), max(expected, len(result.ids)))
    finally:
        if http is not None:
            await http.aclose()
    result.vectors = store.rows(len(result.ids))
    result.catalog_fingerprint = fingerprint.hexdigest()
    result.seconds = time.perf_counter() - started
    return result


class VectorFile:
    """A float32 (rows x dim) .npy memory map that grows (by copying) if the catalog grew since it was counted."""

    def __init__(self, path: Path, dim: int, *, capacity: int) -> None:
        self._path, self._dim = path, dim
        self._array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(max(capacity, 1), dim))

    def write(self, start: int, vectors: np.ndarray) -> None:
        end = start + len(vectors)
        if end > len(self._array):
            self._grow(max(end, len(self._array) * 3 // 2))
        self._array[start:end] = vectors

    def rows(self, count: int) -> np.ndarray:
        return self._array[:count]

    def _grow(self, capacity: int) -> None:
        bigger_path = self._path.parent / f"vectors-{capacity}.npy"
        bigger = np.lib.format.open_memmap(bigger_path, mode="w+", dtype=np.float32, shape=(capacity, self._dim))
        bigger[: len(self._array)] = self._array
        old_path, self._array, self._path = self._path, bigger, bigger_path
        old_path.unlink()


# --- images -------------------------------------------------------------------------------------------------


def _http_client() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(IMAGE_TIMEOUT_S, connect=min(IMAGE_TIMEOUT_S, 3.0)),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=IMAGE_FETCHES),
    )


async def _with_images(
    encoder: Encoder, http: httpx.AsyncClient, page: Sequence[ProductRecord], text: np.ndarray, stats: ImageStats
) -> np.ndarray:
    """normalize(text + image) for the products whose photo can be read; text alone for the others."""
    gate = asyncio.Semaphore(IMAGE_FETCHES)

    async def one(product: ProductRecord) -> Image.Image | None:
        async with gate:
            return await _read_image(http, product, stats)

    images = await asyncio.gather(*(one(product) for product in page))
    rows = [i for i, image in enumerate(images) if image is not None]
    if not rows:
        return text
    readable = [image for image in images if image is not None]
    image_vectors = await asyncio.to_thread(encoder.encode_images, readable)
    combined = text.copy()
    summed = text[rows] + image_vectors
    combined[rows] = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    stats.used += len(rows)
    return combined


async def _read_image(http: httpx.AsyncClient, product: ProductRecord, stats: ImageStats) -> Image.Image | None:
    sources = [value for value in (getattr(product, name, None) for name in IMAGE_FIELDS) if value]
    if not sources:
        stats.missing += 1
        return None
    problems = []
    for source in dict.fromkeys(sources):  # each distinct source once, in field order
        try:
            data = await _image_bytes(http, source)
            return await asyncio.to_thread(_decode, data)
        except Exception as exc:  # any unreadable photo: try the next source, then fall back to text
            problems.append(f"{type(exc).__name__}: {exc}")
    stats.failed(f"product {product.id} ({sources[0]}): {problems[-1]}")
    return None


async def _image_bytes(http: httpx.AsyncClient, source: str) -> bytes:
    scheme = urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        async with http.stream("GET", source) as response:
            response.raise_for_status()
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > IMAGE_MAX_BYTES:
                    raise ValueError(f"larger than {IMAGE_MAX_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    path = Path(urlparse(source).path if scheme == "file" else source)
    if path.stat().st_size > IMAGE_MAX_BYTES:
        raise ValueError(f"larger than {IMAGE_MAX_BYTES} bytes")
    return await asyncio.to_thread(path.read_bytes)


def _decode(data: bytes) -> Image.Image:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))  # JPEG: decode at a reduced scale, much faster
    image.load()
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    return image
