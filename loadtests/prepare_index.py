"""The load runs' index: the real products encoded by the model, the padding products given synthetic vectors.

    .venv/bin/python loadtests/prepare_index.py      # reads DATABASE_URL, FAISS_INDEX_PATH, ML_MODEL_VERSION, ...

Why not `vitrine index build`: the load runs need >= 100k products, and encoding 100k product documents with
a real text tower on this 2-core box takes hours (5,000 MiniLM documents took ~210 s). What a load run
measures of the index is the cost of a search, and that depends on the number of rows, their dimension and
how they are spread, not on what they mean. So:

    real products (ids below the demo catalog's 900,000,000)  encoded by the model, exactly as `index build`
    demo products (the padding)                               normalize(v_r + noise): v_r the vector of a real
                                                              product chosen by the demo id, noise seeded by the
                                                              id (cosine ~0.75 to v_r), so the padding clusters
                                                              around the real products the way a larger
                                                              catalog of similar items would

Everything else is `vitrine index build`'s own code (runners/index_build.py, runners/vector_index.py): the same
page-at-a-time catalog scan, memory-mapped vector file, filter attributes, exact/HNSW threshold, versioned
save and CURRENT pointer. The manifest's catalog fingerprint is salted with PADDING_SALT, so a later
`vitrine index build --if-stale` sees this index as stale and replaces it with a fully encoded one, and this
script skips the work when CURRENT already is its own output for the same catalog and model.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from commands.index import progress_bar  # noqa: E402
from domain.product_text import product_document  # noqa: E402
from domain.settings import Settings, get_settings  # noqa: E402
from runners.index_build import CatalogFingerprint, Encoded, VectorFile, model_tag_to_load  # noqa: E402

DEMO_FIRST_ID = 900_000_000  # domain/demo_catalog.py
PADDING_SALT = "loadtest-padding-v1"
NOISE = 0.9  # per-dimension noise relative to a unit vector's per-dimension scale: cosine ~ 1/sqrt(1+NOISE^2)
PAGE = 512


def is_padding(product_id: int) -> bool:
    return product_id >= DEMO_FIRST_ID


def padding_vectors(ids: list[int], real: np.ndarray, dim: int) -> np.ndarray:
    """Deterministic unit vectors near real ones: the same ids and real vectors give the same rows."""
    out = np.empty((len(ids), dim), dtype=np.float32)
    for row, product_id in enumerate(ids):
        rng = np.random.default_rng(product_id)
        if len(real):
            anchor = real[int(rng.integers(len(real)))]
            vector = anchor + rng.standard_normal(dim).astype(np.float32) * (NOISE / np.sqrt(dim))
        else:
            vector = rng.standard_normal(dim).astype(np.float32)
        out[row] = vector / np.linalg.norm(vector)
    return out


async def encode(settings: Settings, scratch: Path, model_tag: str) -> tuple[Encoded, float, int]:
    """(what `index build` would have encoded, seconds spent in the model, real products encoded)."""
    from adapters.db.engine import create_engine
    from adapters.db.products import count_active_products, iter_active_products
    from runners.encoder_model import load_encoder

    engine = create_engine(settings)
    try:
        expected = await count_active_products(engine)
        encoder = await asyncio.to_thread(load_encoder, device=settings.encoder_device)
        started = time.perf_counter()
        store = VectorFile(scratch / "vectors.npy", encoder.dim, capacity=expected + max(64, expected // 100))
        result = Encoded(model_tag=encoder.model_tag, vectors=store.rows(0))
        result.images.skipped = "load-test index: text vectors only"
        fingerprint = CatalogFingerprint(f"{model_tag}|{PADDING_SALT}")
        real_rows: list[np.ndarray] = []
        model_seconds, real_count = 0.0, 0
        with progress_bar("encoding (padding synthetic)") as progress:
            async for page in iter_active_products(engine, batch_size=PAGE):
                fingerprint.add(page)
                vectors = np.empty((len(page), encoder.dim), dtype=np.float32)
                real = [i for i, product in enumerate(page) if not is_padding(product.id)]
                if real:
                    t0 = time.perf_counter()
                    encoded = await asyncio.to_thread(encoder.encode_text, [product_document(page[i]) for i in real])
                    model_seconds += time.perf_counter() - t0
                    vectors[real] = encoded
                    real_rows.append(encoded)
                    real_count += len(real)
                padding = [i for i, product in enumerate(page) if is_padding(product.id)]
                if padding:
                    anchors = np.concatenate(real_rows) if real_rows else np.empty((0, encoder.dim), np.float32)
                    vectors[padding] = padding_vectors([page[i].id for i in padding], anchors, encoder.dim)
                store.write(len(result.ids), vectors)
                result.add_rows(page)  # after their vectors: row i of both is product i
                progress(len(result.ids), max(expected, len(result.ids)))
        result.vectors = store.rows(len(result.ids))
        result.catalog_fingerprint = fingerprint.hexdigest()
        result.seconds = time.perf_counter() - started
        return result, model_seconds, real_count
    finally:
        await engine.dispose()


async def is_current(settings: Settings, root: Path, model_tag: str) -> bool:
    from adapters.db.engine import create_engine
    from adapters.db.products import iter_active_products
    from runners.vector_index import current_version, read_manifest

    version = current_version(root)
    if version is None:
        return False
    manifest = read_manifest(root / version)
    if manifest.model_tag != model_tag:
        return False
    fingerprint = CatalogFingerprint(f"{model_tag}|{PADDING_SALT}")
    engine = create_engine(settings)
    try:
        async for page in iter_active_products(engine, batch_size=5000):
            fingerprint.add(page)
    finally:
        await engine.dispose()
    return fingerprint.hexdigest() == manifest.catalog_fingerprint


def main() -> int:
    from runners.vector_index import ProductAttributes, VectorIndex, prune_versions

    settings = get_settings()
    root = settings.resolved_index_path
    model_tag = model_tag_to_load(settings)
    if asyncio.run(is_current(settings, root, model_tag)):
        print(f"index under {root} is current for {model_tag}; nothing to do")
        return 0
    scratch = root / f".build-{int(time.time() * 1000)}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        encoded, model_seconds, real_count = asyncio.run(encode(settings, scratch, model_tag))
        attributes = ProductAttributes.from_values(
            price=encoded.price,
            in_stock=encoded.in_stock,
            brand=encoded.brand,
            category=encoded.category,
            merchant=encoded.merchant,
        )
        started = time.perf_counter()
        index = VectorIndex.build(
            encoded.ids,
            encoded.vectors,
            attributes,
            exact_threshold=settings.index_exact_threshold,
            model_tag=encoded.model_tag,
            catalog_fingerprint=encoded.catalog_fingerprint,
        )
        index.save(root)
        indexing_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    prune_versions(root, keep=1)
    print(
        f"index {index.version}: {index.size} products ({real_count} encoded by the model in {model_seconds:.1f}s, "
        f"{index.size - real_count} synthetic), {index.kind}, dim {index.dim}, model {index.model_tag}; "
        f"indexing and saving {indexing_seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
