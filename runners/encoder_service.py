"""The encoder service: it batches text and image encoding, and does nothing else.

Callers hold it with `bentoml.depends(TextImageEncoder)` and always send a batch (a list):

    vectors = await self.encoder.to_async.encode_text(["black heels", "denim jacket"])  # (2, dim) float32
    vectors = await self.encoder.to_async.encode_image([pil_image])                      # (1, dim) float32
    facts = await self.encoder.to_async.info()  # {"family", "model_tag", "dim", "has_image_tower", "device", ...}

Rows are L2-normalised (runners/encoder_model.py). BentoML merges concurrent requests into one model call of at
most ENCODER_MAX_BATCH_SIZE items, waiting at most ENCODER_MAX_LATENCY_MS; past that deadline its dispatcher
answers 503 rather than queue further, so size the deadline to the model's batch time on the hardware.

The model is the store's settings.encoder_model_tag. It is a `BentoModel` class attribute so that
`bentoml build` packs it into the Bento: at build time "latest" resolves to the concrete version it names
then, and a served Bento's store holds only that version.

`vitrine_encoder_batch_size{tower="text"|"image"}` counts the items in each batch the model ran; BentoML's
own `bentoml_service_adaptive_batch_size` counts requests merged per batch instead. Both land in every
service's /metrics, the API service's included: all processes of a `bentoml serve` share one Prometheus
multiprocess directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from PIL import Image
from prometheus_client import Histogram

from domain.errors import Unsupported
from domain.settings import get_settings
from runners import batching, serving

if TYPE_CHECKING:
    from runners.encoder_model import Encoder

BATCH_SIZE = Histogram(
    "vitrine_encoder_batch_size",
    "Items in each batch the encoder ran, by tower.",
    ["tower"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

# Read at import: the decorators below fix workers, resources and batching when the class is defined.
settings = get_settings()
batching.apply(settings.batching_policy == "vitrine")  # see runners/batching.py


def _resources(device: str) -> dict[str, Any]:
    # What ViT-B-32 needs; the figures size a BentoCloud instance and do not limit a local `bentoml serve`.
    if device == "cuda":
        return {"gpu": 1, "cpu": "2", "memory": "4Gi"}
    return {"cpu": "2", "memory": "2Gi"}


@bentoml.service(
    workers=settings.encoder_workers,
    resources=_resources(settings.encoder_device),
    traffic={"timeout": 30},
    runner_connection=serving.RUNNER_CONNECTION,
    logging={"access": {"enabled": settings.runner_access_log}},  # a line per internal call; the API logs requests
)
class TextImageEncoder:
    model = bentoml.models.BentoModel(settings.encoder_model_tag)

    def __init__(self) -> None:
        from runners.encoder_model import available_cpus, load_encoder

        current = get_settings()
        # Workers share the cores: each gets its part, so they do not oversubscribe them.
        threads = max(1, available_cpus() // current.encoder_workers)
        self.encoder: Encoder = load_encoder(
            self.model, device=current.encoder_device, num_threads=threads, int8_text=current.encoder_int8_text
        )
        self.encoder.encode_text(["warm up"])  # first call pays lazy kernel setup; keep it out of requests
        serving.settle_gc_after_startup()

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.encoder_max_batch_size,
        max_latency_ms=settings.encoder_max_latency_ms,
    )
    def encode_text(self, texts: list[str]) -> np.ndarray:
        BATCH_SIZE.labels(tower="text").observe(len(texts))
        return self.encoder.encode_text(texts)

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.encoder_max_batch_size,
        max_latency_ms=settings.encoder_max_latency_ms,
    )
    def encode_image(self, images: list[Image.Image]) -> np.ndarray:
        BATCH_SIZE.labels(tower="image").observe(len(images))
        try:
            return self.encoder.encode_images(images)
        except Unsupported as error:  # a 400 for the caller, not a 500
            raise InvalidArgument(error.message) from error

    @bentoml.api
    def info(self) -> dict[str, Any]:
        return {
            "family": self.encoder.family,
            "model_tag": self.encoder.model_tag,
            "dim": self.encoder.dim,
            "has_image_tower": self.encoder.has_image_tower,
            "device": self.encoder.device,
            "int8_text": self.encoder.int8_text,  # runners/encoder_model.py: kept or not
            "batching_policy": "vitrine" if batching.is_applied() else "stock",  # runners/batching.py
        }


serving.fix_output_media_types(TextImageEncoder)
serving.trace_only_with_an_exporter()
