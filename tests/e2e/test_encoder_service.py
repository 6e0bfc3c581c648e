"""The encoder service alone, served for real: `bentoml serve runners.encoder_service:TextImageEncoder`.

Its store (a temporary BENTOML_HOME) holds only a tiny random-weight open_clip model, so the server starts in
seconds. Over HTTP with BentoML's clients: text and image batches come back as unit rows equal to what the
same model gives in process, `info()` describes the model, and 32 concurrent one-text requests are merged
into batches larger than one, as the server's own /metrics shows.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import httpx
import numpy as np
import pytest
from bentoml._internal.models import ModelStore
from bentoml.container import BentoMLContainer
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from runners.encoder_model import load_encoder
from runners.model_store import import_open_clip
from tests.e2e.support import free_port, log_tail, serve, stop_process_group, wait_until, write_tiny_clip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TEXTS = ["boots", "black leather ankle boots", "a red summer dress with white polka dots and short sleeves"]


@dataclass
class Served:
    url: str
    model_tag: str
    reference: Any  # the same model loaded in process


def _import_tiny_model(home: Path) -> str:
    """Random weights for TINY_CONFIG, saved as a checkpoint and imported into the store at `home`."""
    config, checkpoint = write_tiny_clip(home)
    with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
        return str(import_open_clip("tiny-clip", pretrained=str(checkpoint), config_file=config).tag)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("bentoml-encoder")
    (home / "models").mkdir()
    tag = _import_tiny_model(home)
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "ENCODER_MODEL_NAME": "vitrine-encoder",
        "ML_MODEL_VERSION": "latest",
        "ENCODER_DEVICE": "cpu",
        "ENCODER_WORKERS": "1",
        "ENCODER_MAX_BATCH_SIZE": "32",
        # Generous: past this deadline BentoML sheds requests (503), and this machine is shared.
        "ENCODER_MAX_LATENCY_MS": "5000",
    }
    log = home / "serve.log"
    process = serve("runners.encoder_service:TextImageEncoder", port=port, env=env, log_path=log)
    try:
        url = f"http://127.0.0.1:{port}"
        ready = lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200  # noqa: E731
        try:
            wait_until(ready, timeout=120, interval=0.3, what="the encoder's /readyz", process=process)
        except (TimeoutError, RuntimeError) as exc:
            pytest.fail(f"{exc}:\n{log_tail(log)}")
        with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
            reference = load_encoder(tag, device="cpu", int8_text=True)  # as the service loads it by default
        yield Served(url=url, model_tag=tag, reference=reference)
    finally:
        stop_process_group(process)


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> Image.Image:
    """An image as a client has it: opened from encoded bytes (BentoML's HTTP client uploads those bytes)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    buffer.seek(0)
    return Image.open(buffer)


def _text_batches(url: str) -> tuple[float, float, float]:
    """From /metrics: (batches run, batches of exactly one text, texts encoded)."""
    families = {family.name: family for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    family = families.get("vitrine_encoder_batch_size")  # absent until the first batch runs
    samples = [s for s in family.samples if s.labels.get("tower") == "text"] if family else []
    value = {(s.name, s.labels.get("le")): s.value for s in samples}
    return (
        value.get(("vitrine_encoder_batch_size_count", None), 0.0),
        value.get(("vitrine_encoder_batch_size_bucket", "1.0"), 0.0),
        value.get(("vitrine_encoder_batch_size_sum", None), 0.0),
    )


def _unit_rows(vectors: Any, rows: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    assert array.shape == (rows, 32)
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    return array


def test_info_describes_the_served_model(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.url) as client:
        info = client.info()
    assert info == {
        "family": "open-clip",
        "model_tag": served.model_tag,
        "dim": 32,
        "has_image_tower": True,
        "device": "cpu",
        "int8_text": served.reference.int8_text,  # whichever the load-time check chose, the same both ways
        "batching_policy": "vitrine",
    }


def test_text_batch_matches_the_in_process_encoder(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.url) as client:
        vectors = _unit_rows(client.encode_text(texts=TEXTS), len(TEXTS))
    np.testing.assert_allclose(vectors, served.reference.encode_text(TEXTS), atol=1e-5)


def test_image_batch_matches_the_in_process_encoder(served: Served) -> None:
    def images() -> list[Image.Image]:  # fresh each time: the client consumes the encoded bytes
        return [_png((64, 48), (200, 30, 30)), _png((20, 90), (0, 0, 255))]

    with bentoml.SyncHTTPClient(served.url) as client:
        vectors = _unit_rows(client.encode_image(images=images()), 2)
    np.testing.assert_allclose(vectors, served.reference.encode_images(images()), atol=1e-5)


def test_concurrent_requests_are_batched(served: Served) -> None:
    texts = [f"product {i} in size {i % 7}" for i in range(32)]

    async def burst() -> list[Any]:
        async with bentoml.AsyncHTTPClient(served.url) as client:
            return await asyncio.gather(*(client.encode_text(texts=[text]) for text in texts))

    batches_before, singles_before, texts_before = _text_batches(served.url)
    results = asyncio.run(burst())
    batches, singles, encoded = _text_batches(served.url)

    for result in results:
        _unit_rows(result, 1)
    assert encoded - texts_before == len(texts)
    assert (batches - batches_before) - (singles - singles_before) >= 1, "no batch of more than one text ran"
