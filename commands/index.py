"""`vitrine index build`: encode the active catalog and save a new index version.

    vitrine index build [--batch-size 256] [--exact-threshold N] [--no-images] [--if-stale] [--keep 3]

Products stream from the database a page at a time (adapters/db/products.py) and their vectors go straight
into a preallocated memory-mapped file, so memory holds one page of products (and of images) at a time
however large the catalog. The text embedded for a product is `domain.product_text.product_document`; the
encoder is `runners.encoder_model.load_encoder`, the same loader and normaliser the encoder service uses for queries.

Text and image: when the model has an image tower and a product's photo can be read (a local path, or an
http(s) URL fetched with a short timeout; merchant_image_url, then aw_image_url, then large_image), the
product's vector is normalize(text + image). Both are unit vectors, so the sum is their bisector: equally
close to the text and the photo, which lets one index serve text queries (text tower) and image queries
(image tower) without one modality drowning the other; CLIP's two towers are trained to agree, so the sum
keeps what they share. A product whose photo cannot be read falls back to its text vector; those are
counted and reported, never fatal.

Then runners/vector_index.py builds the index (exact below --exact-threshold products, HNSW at or above it)
and saves it as a new version under FAISS_INDEX_PATH, moving CURRENT to it; a running index service swaps
to it within INDEX_RELOAD_INTERVAL_S. `--if-stale` skips all of that when CURRENT was built from the same
active products (each product's content hash) with the same model. Old versions beyond --keep are deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from commands.db import DatabaseUrlOption, database_errors, database_settings
from domain.product_text import product_document
from domain.settings import Settings

if TYPE_CHECKING:
    from PIL import Image
    from sqlalchemy.ext.asyncio import AsyncEngine

    from domain.catalog_feed import ProductRecord
    from runners.encoder_model import Encoder

app = typer.Typer(no_args_is_help=True)

IMAGE_FIELDS = ("merchant_image_url", "aw_image_url", "large_image")
IMAGE_TIMEOUT_S = 5.0
IMAGE_MAX_BYTES = 15 * 1024 * 1024
IMAGE_MAX_SIDE = 640  # CLIP sees 224 px; a batch of full-size photos would not fit in memory
IMAGE_FETCHES = 16  # concurrent downloads


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


@app.command()
def build(
    batch_size: Annotated[int, typer.Option(min=1, help="Products per database page and encoder batch.")] = 256,
    exact_threshold: Annotated[
        int | None, typer.Option(min=1, help="Exact search below this many products (default: settings).")
    ] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Text vectors only, even for CLIP.")] = False,
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Do nothing when CURRENT matches the catalog and model.")
    ] = False,
    keep: Annotated[int, typer.Option(min=1, help="Index versions to keep on disk (CURRENT always).")] = 3,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Encode the active catalog and save a new index version (CURRENT moves to it)."""
    from runners.vector_index import ProductAttributes, VectorIndex, prune_versions

    settings = database_settings(database_url)
    root = settings.resolved_index_path
    console = Console()
    scratch = root / f".build-{int(time.time() * 1000)}"
    try:
        with database_errors(settings):
            encoded = asyncio.run(_encode_catalog(settings, root, scratch, batch_size, no_images, if_stale))
        if encoded is None:
            console.print(f"index under {escape(str(root))} is up to date; nothing to do", highlight=False)
            return
        if not encoded.ids:
            console.print("[yellow]warning:[/yellow] no active products; saving an empty index")
        attributes = ProductAttributes.from_values(
            price=encoded.price,
            in_stock=encoded.in_stock,
            brand=encoded.brand,
            category=encoded.category,
            merchant=encoded.merchant,
        )
        started = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task("indexing", total=len(encoded.ids))
            index = VectorIndex.build(
                encoded.ids,
                encoded.vectors,
                attributes,
                exact_threshold=exact_threshold or settings.index_exact_threshold,
                model_tag=encoded.model_tag,
                catalog_fingerprint=encoded.catalog_fingerprint,
                progress=lambda done, total: progress.update(task, completed=done),
            )
        folder = index.save(root)
        indexing_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pruned = prune_versions(root, keep=keep)
    images = encoded.images
    console.print(
        f"index version [bold]{escape(index.version)}[/bold]: {index.size} products, {index.kind}, "
        f"dim {index.dim}, model {escape(index.model_tag)}\n"
        f"  encoding {encoded.seconds:.1f}s, indexing and saving {indexing_seconds:.1f}s, "
        f"total {encoded.seconds + indexing_seconds:.1f}s\n"
        f"  {images.summary()}\n"
        f"  saved to {escape(str(folder))}; CURRENT -> {escape(index.version)}"
        + (f"; removed {len(pruned)} old version(s)" if pruned else ""),
        highlight=False,
    )
    if images.examples:
        console.print("  unreadable images, e.g.: " + escape("; ".join(images.examples)), highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("products"),
        TimeElapsedColumn(),
    )


async def _encode_catalog(
    settings: Settings, root: Path, scratch: Path, batch_size: int, no_images: bool, if_stale: bool
) -> Encoded | None:
    from adapters.db.engine import create_engine
    from adapters.db.products import count_active_products
    from runners.encoder_model import load_encoder

    engine = create_engine(settings)
    try:
        # The staleness check needs only the model's tag, not the model: loading torch takes seconds.
        if if_stale and await _is_current(engine, root, _model_tag(settings), batch_size):
            return None
        expected = await count_active_products(engine)
        encoder = await asyncio.to_thread(load_encoder, device=settings.encoder_device)
        return await _encode(engine, encoder, scratch, expected, batch_size, use_images=not no_images)
    finally:
        await engine.dispose()


def _model_tag(settings: Settings) -> str:
    """The tag `load_encoder` will load ("latest" resolved), as it records it (runners/encoder_model.py)."""
    import bentoml

    return str(bentoml.models.get(settings.encoder_model_tag).tag)


async def _is_current(engine: AsyncEngine, root: Path, model_tag: str, batch_size: int) -> bool:
    from adapters.db.products import iter_active_products
    from runners.vector_index import current_version, read_manifest

    version = current_version(root)
    if version is None:
        return False
    manifest = read_manifest(root / version)
    if manifest.model_tag != model_tag or manifest.catalog_fingerprint is None:
        return False
    fingerprint = _Fingerprint(model_tag)
    async for page in iter_active_products(engine, batch_size=max(batch_size, 1000)):
        fingerprint.add(page)
    return fingerprint.hexdigest() == manifest.catalog_fingerprint


class _Fingerprint:
    """What an index was built from: the model and each active product's content hash, in id order."""

    def __init__(self, model_tag: str) -> None:
        self._digest = hashlib.blake2b(model_tag.encode("utf-8"), digest_size=16)

    def add(self, page: Sequence[ProductRecord]) -> None:
        for product in page:
            self._digest.update(f"{product.id}:{product.content_hash()};".encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def _encode(
    engine: AsyncEngine, encoder: Encoder, scratch: Path, expected: int, batch_size: int, *, use_images: bool
) -> Encoded:
    from adapters.db.products import iter_active_products

    started = time.perf_counter()
    scratch.mkdir(parents=True, exist_ok=True)
    store = _VectorFile(scratch / "vectors.npy", encoder.dim, capacity=expected + max(64, expected // 100))
    result = Encoded(model_tag=encoder.model_tag, vectors=store.rows(0))
    fingerprint = _Fingerprint(encoder.model_tag)
    if not encoder.has_image_tower:
        result.images.skipped = "text-only model"
    elif not use_images:
        result.images.skipped = "--no-images"
    http = _http_client() if result.images.skipped is None else None
    try:
        with _progress() as progress:
            task = progress.add_task("encoding", total=expected)
            async for page in iter_active_products(engine, batch_size=batch_size):
                fingerprint.add(page)
                texts = [product_document(product) for product in page]
                vectors = await asyncio.to_thread(encoder.encode_text, texts)
                if http is not None:
                    vectors = await _with_images(encoder, http, page, vectors, result.images)
                store.write(len(result.ids), vectors)
                result.add_rows(page)  # after their vectors: row i of both is product i
                progress.update(task, completed=len(result.ids), total=max(expected, len(result.ids)))
    finally:
        if http is not None:
            await http.aclose()
    result.vectors = store.rows(len(result.ids))
    result.catalog_fingerprint = fingerprint.hexdigest()
    result.seconds = time.perf_counter() - started
    return result


class _VectorFile:
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


def _http_client() -> Any:
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(IMAGE_TIMEOUT_S, connect=min(IMAGE_TIMEOUT_S, 3.0)),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=IMAGE_FETCHES),
    )


async def _with_images(
    encoder: Encoder, http: Any, page: Sequence[ProductRecord], text: np.ndarray, stats: ImageStats
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


async def _read_image(http: Any, product: ProductRecord, stats: ImageStats) -> Image.Image | None:
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


async def _image_bytes(http: Any, source: str) -> bytes:
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
