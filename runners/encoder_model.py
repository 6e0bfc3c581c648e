"""Text and image encoders: the one code path from text or images to vectors.

The encoder service (runners/encoder_service.py) and `vitrine index build` both call `load_encoder`, so query vectors
and index vectors come from the same loader, tokenizer, padding, preprocessing and normalisation. Every
vector leaves here as float32 and L2-normalised, so inner product is cosine similarity.

Two families live in the BentoML model store under one name (settings' `encoder_model_name`), told apart
by the `family` metadata that runners/model_store.py writes:

    open-clip   an open_clip CLIP model saved as open_clip's own `local-dir:` layout (config JSON, weights,
                tokenizer files where needed), so it loads with no network; text and image towers
    minilm      a sentence-transformers directory (all-MiniLM-L6-v2); text only

Why the text tower is not simply `model.encode_text(tokenizer(texts))`: open_clip pads every text to 77
tokens, and on CPU most of the text tower's time goes to those padding positions. With a causal attention
mask no real token attends to a later position, and the pooled token (EOT) is a real token, so running only
up to the longest pooled position in the batch gives the same vectors (to float rounding), for ViT-B-32 on
this 2-core CPU about 3x faster for one query and 8x for batches of 16-64 short queries.
`OpenClipEncoder` does that when the tower's layout allows it and checks it against the 77-token path once
at load; otherwise it pads to the full context.

`int8_text` (the encoder service's ENCODER_INT8_TEXT): on CPU, the truncated text tower's Linear layers run in
int8 (PyTorch's dynamic quantization, weights per output channel), the attention's projections included
(runners/int8_attention.py), about 2.5-3.5x faster for ViT-B-32's text tower at batches of 1-16 here. It is kept
only when, at load, every probe text's vector stays within cosine `INT8_MIN_COSINE` of the float32 one
(ViT-B-32, random weights: 0.998 at worst); otherwise the tower stays
float32 with a warning. Activations are scaled per batch, so a text's vector moves slightly (far inside that
bound) with its batchmates. MiniLM is not offered it: its int8 vectors fell to cosine 0.96 (0.91 per tensor).
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from domain.errors import Unsupported

if TYPE_CHECKING:
    import bentoml
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

# Idle OpenMP threads sleep rather than spin. When the cores are shared (here with the API and index
# processes, and other work), a spinning thread waits on descheduled peers: under load on this 2-core box,
# MiniLM on 2 threads took ~500 ms per query with libgomp's default and ~20 ms with PASSIVE. libgomp reads
# this when torch loads, hence here, before any torch import; an OMP_WAIT_POLICY already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Family = Literal["open-clip", "minilm"]
# The text tower is truncated only when its pooled token depends on nothing after it (see module doc).
TRUNCATABLE_POOL_TYPES = frozenset({"argmax", "eos", "first"})
# Largest difference a load-time check accepts between a faster path's vectors and the reference path's: the
# truncated text tower against the 77-token one, MiniLM's direct forward against sentence-transformers' encode.
SAME_VECTORS_TOLERANCE = 1e-4
PADDING_PROBE = ["a", "black leather ankle boots with a block heel", "red dress"]
# Up to this many texts (a served batch) MiniLM runs as one padded batch without sentence-transformers' `encode`;
# more (an index build) go through `encode`, which sorts them by length into mini-batches of 64.
DIRECT_MAX_TEXTS = 64
INT8_MIN_COSINE = 0.99  # an int8 text tower is kept only if every probe vector is this close to float32's
# Shopper queries the load-time checks encode both ways (int8 against float32, direct against encode).
SHOPPER_PROBE = [
    *PADDING_PROBE,
    "mens running shoes",
    "navy blue slim fit chinos for the office",
    "something to keep the sun off my head",
    "waterproof hiking jacket with a hood",
    "gold hoop earrings",
    "kids trainers under 30",
    "floral summer maxi dress not black",
    "leather crossbody bag for her",
    "t-shirt",
]


@runtime_checkable
class Encoder(Protocol):
    family: Family
    model_tag: str
    dim: int
    has_image_tower: bool
    device: str
    int8_text: bool  # whether the text tower runs in int8 (see the module doc)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""
        ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32, each row L2-normalised; `Unsupported` for text-only models."""
        ...


# --- loading -------------------------------------------------------------------------------------------------


def load_encoder(
    model: bentoml.Model | str | None = None,
    *,
    device: str = "auto",
    num_threads: int | None = None,
    int8_text: bool = False,
) -> Encoder:
    """Load an encoder from the BentoML model store.

    `model`: a stored model, a tag ("vitrine-encoder:latest", "vitrine-encoder:<version>"), or None for the
    settings' `encoder_model_tag`. "latest" is the model imported last (BentoML keeps a `latest` pointer per
    name, moved on every save). `device`: "auto" (cuda when available, else cpu), "cpu" or "cuda".
    `num_threads`: torch intra-op threads; None means every CPU this process may use (see
    `configure_torch_threads`). `int8_text`: an int8 text tower where it keeps its vectors (module doc).
    """
    import bentoml

    if model is None:
        from domain.settings import get_settings

        model = get_settings().encoder_model_tag
    stored = bentoml.models.get(model) if isinstance(model, str) else model
    family = stored.info.metadata.get("family")
    resolved_device = resolve_device(device)
    configure_torch_threads(num_threads)
    if family == "open-clip":
        return OpenClipEncoder(
            Path(stored.path), model_tag=str(stored.tag), device=resolved_device, int8_text=int8_text
        )
    if family == "minilm":
        return MiniLMEncoder(Path(stored.path), model_tag=str(stored.tag), device=resolved_device)
    raise ValueError(
        f"model {stored.tag} has family {family!r}; expected 'open-clip' or 'minilm' "
        "(import it with `vitrine model import`)"
    )


def resolve_device(device: str = "auto") -> str:
    """Device "auto" is cuda when torch sees a GPU; "cuda" without a GPU is a configuration error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise RuntimeError("ENCODER_DEVICE=cuda but torch sees no CUDA device")
    return "cpu"


def available_cpus() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota.

    `os.cpu_count()` (and torch's default) count the host's cores, which in a container limited by a CFS
    quota can be many times what it may use.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def configure_torch_threads(num_threads: int | None = None) -> int:
    """Give torch `num_threads` intra-op threads (default: `available_cpus()`) and one inter-op thread.

    Why: a process runs one batch at a time (BentoML runs a sync API on one thread), so inter-op parallelism
    only adds threads; and intra-op threads beyond the CPUs the process may use make every matmul wait for
    descheduled threads, which on a 2-core box costs more than it gains. The encoder service passes
    available_cpus() // workers so that its workers do not fight each other for the same cores.
    """
    import torch

    threads = max(1, num_threads or available_cpus())
    torch.set_num_threads(threads)
    with suppress(RuntimeError):  # settable only before the first inter-op work; later, leave it
        torch.set_num_interop_threads(1)
    return threads


def _normalised(features: torch.Tensor) -> np.ndarray:
    import torch.nn.functional as F

    return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent areas become white (product photos often have transparent backgrounds)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# --- open_clip -----------------------------------------------------------------------------------------------


class OpenClipEncoder:
    """An open_clip model saved in open_clip's `local-dir:` layout (see runners/model_store.py)."""

    family: Family = "open-clip"
    has_image_tower = True

    def __init__(self, model_dir: Path, *, model_tag: str, device: str = "cpu", int8_text: bool = False) -> None:
        import open_clip
        import torch

        self.model_tag = model_tag
        self.device = device
        self._torch = torch
        source = f"local-dir:{model_dir}"
        model, _, preprocess = open_clip.create_model_and_transforms(source, device=device)
        self._model = model.eval()
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(source)
        self.context_length = int(model.context_length)
        self._text, self._pool_type, self._eos_id = self._text_layout(model)
        # open_clip reads the dtype off a Linear layer's weight, which a quantized layer no longer has.
        self._cast_dtype = self._text.transformer.get_cast_dtype() if self._text is not None else None
        probe = self._tokenizer(PADDING_PROBE)
        full = self._text_features(probe, full_context=True)
        self.dim = int(full.shape[1])
        self.dynamic_padding = self._text is not None and self._truncation_matches(probe, full)
        self.int8_text = int8_text and device == "cpu" and self.dynamic_padding and self._quantize_text()

    def _quantize_text(self) -> bool:
        """Swap the truncated tower's transformer for an int8 one if it keeps every probe's vector within
        `INT8_MIN_COSINE` of float32's; whether it did."""
        reference = self.encode_text(SHOPPER_PROBE)
        original = self._text.transformer
        try:
            with warnings.catch_warnings():  # torch marks its eager quantization deprecated (torchao replaces it)
                warnings.simplefilter("ignore")
                from runners.int8_attention import with_plain_projections

                quantization = self._torch.ao.quantization
                self._text.transformer = quantization.quantize_dynamic(
                    with_plain_projections(original), {self._torch.nn.Linear: quantization.per_channel_dynamic_qconfig}
                )
                self.encode_text(PADDING_PROBE)  # the first int8 call warns too
        except Exception as exc:  # a torch without it, or without an int8 kernel for this CPU
            self._text.transformer = original
            logger.warning("%s: no int8 text tower (%s); keeping float32", self.model_tag, exc)
            return False
        agreement = float((self.encode_text(SHOPPER_PROBE) * reference).sum(axis=1).min())
        if agreement < INT8_MIN_COSINE:
            self._text.transformer = original
            logger.warning(
                "%s: int8 text tower agrees only to cosine %.4f; keeping float32", self.model_tag, agreement
            )
            return False
        logger.info("%s: int8 text tower (cosine to float32 >= %.4f on the probe)", self.model_tag, agreement)
        return True

    @staticmethod
    def _text_layout(model: Any) -> tuple[Any, str, int | None]:
        """The module holding the text tower's parts when its output can be truncated safely, else None.

        `CLIP` copies the tower's parts onto the model (`text_pool_type`, `text_eos_id`, `attn_mask`);
        `CustomTextCLIP` keeps a `TextTransformer` at `.text` (`pool_type`, `eos_id`, `attn_mask`). A tower
        without a causal mask (SigLIP), with a class token or padding mask (CoCa), or an HF text model is
        run on the full context instead.
        """
        if hasattr(model, "token_embedding"):
            holder, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
        else:
            holder = getattr(model, "text", None)
            if holder is None or not hasattr(holder, "token_embedding"):
                return None, "", None
            if getattr(holder, "cls_emb", None) is not None or getattr(holder, "use_pad_mask", False):
                return None, "", None
            pool_type, eos_id = holder.pool_type, getattr(holder, "eos_id", None)
        if getattr(holder, "attn_mask", None) is None or pool_type not in TRUNCATABLE_POOL_TYPES:
            return None, "", None
        if pool_type == "eos" and eos_id is None:  # where it pools is unknown: cannot cut after it
            return None, "", None
        return holder, pool_type, eos_id

    def _truncation_matches(self, probe: torch.Tensor, full: torch.Tensor) -> bool:
        """Guard against open_clip internals this module does not know: compare once, at load."""
        gap = float((self._text_features(self._truncate(probe)) - full).abs().max())
        if gap > SAME_VECTORS_TOLERANCE:
            logger.warning("%s: truncated text tower differs by %.1e; padding to full context", self.model_tag, gap)
            return False
        return True

    def _truncate(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cut the batch after its last pooled position (as open_clip's `text_global_pool` picks it)."""
        if self._pool_type == "argmax":
            pooled = tokens.argmax(dim=-1)
        elif self._pool_type == "eos":
            assert self._eos_id is not None  # _text_layout leaves an "eos" tower without one uncut
            pooled = tokens.eq(self._eos_id).int().argmax(dim=-1)
        else:  # "first"
            pooled = self._torch.zeros(1, dtype=self._torch.long)
        return tokens[:, : int(pooled.max()) + 1]

    def _text_features(self, tokens: torch.Tensor, *, full_context: bool = False) -> torch.Tensor:
        tokens = tokens.to(self.device)
        with self._torch.inference_mode(), self._autocast():
            if full_context or self._text is None:
                features: torch.Tensor = self._model.encode_text(tokens)
                return features
            return self._truncated_forward(tokens)

    def _truncated_forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's text forward with the positional embedding and causal mask cut to the tokens' length."""
        from open_clip.transformer import text_global_pool

        tower, length = self._text, tokens.shape[1]
        cast_dtype = self._cast_dtype
        x = tower.token_embedding(tokens).to(cast_dtype)
        x = x + tower.positional_embedding[:length].to(cast_dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
        x = tower.ln_final(x)
        x = text_global_pool(x, tokens, self._pool_type, eos_token_id=self._eos_id)
        pooled: torch.Tensor = x
        projection = tower.text_projection
        if projection is None:
            return pooled
        if isinstance(projection, self._torch.nn.Linear):
            projected: torch.Tensor = projection(pooled)
            return projected
        projected = pooled @ projection
        return projected

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.device == "cuda":
            return self._torch.autocast(device_type="cuda", dtype=self._torch.float16)
        return nullcontext()

    def encode_text(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        tokens = self._tokenizer(list(texts))
        if self.dynamic_padding:
            return _normalised(self._text_features(self._truncate(tokens)))
        return _normalised(self._text_features(tokens, full_context=True))

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        # Resizing and cropping are per image (sizes differ); the tower then runs once for the whole batch.
        batch = self._torch.stack([self._preprocess(_to_rgb(image)) for image in images]).to(self.device)
        with self._torch.inference_mode(), self._autocast():
            return _normalised(self._model.encode_image(batch))


# --- MiniLM --------------------------------------------------------------------------------------------------


class MiniLMEncoder:
    """A sentence-transformers model directory (all-MiniLM-L6-v2); text only."""

    family: Family = "minilm"
    has_image_tower = False
    int8_text = False  # not offered: its int8 vectors fell below the bound (module doc)

    def __init__(self, model_dir: Path, *, model_tag: str, device: str = "cpu") -> None:
        # The directory is complete; never let transformers or the hub reach for the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_tag = model_tag
        self.device = device
        self._model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self._model.eval()
        dim, context_length = self._model.get_embedding_dimension(), self._model.max_seq_length
        if dim is None or context_length is None:
            raise ValueError(f"{model_dir}: the model does not state its embedding size and maximum length")
        self.dim = int(dim)
        self.context_length = int(context_length)  # longer texts are truncated
        self._direct = self._direct_layout() and self._direct_matches()

    def _direct_layout(self) -> bool:
        """Whether the model is exactly a transformer, mean pooling and normalisation without prompts, which
        `_direct_forward` computes without sentence-transformers' `encode` around it."""
        modules = [type(module).__name__ for module in self._model]
        if modules != ["Transformer", "Pooling", "Normalize"] or not hasattr(self._model[0], "auto_model"):
            return False
        no_prompts = not any(self._model.prompts.values()) and self._model.default_prompt_name is None
        pooling: Any = self._model[1]
        return bool(pooling.get_config_dict().get("pooling_mode") == "mean" and no_prompts)

    def _direct_matches(self) -> bool:
        """Guard against sentence-transformers internals this module does not know: compare once, at load."""
        gap = float(np.abs(self._direct_forward(SHOPPER_PROBE) - self._encode(SHOPPER_PROBE)).max())
        if gap > SAME_VECTORS_TOLERANCE:
            logger.warning("%s: direct forward differs by %.1e; using sentence-transformers", self.model_tag, gap)
            return False
        return True

    def _direct_forward(self, texts: list[str]) -> np.ndarray:
        """The model's forward and mean pooling over real tokens, as sentence-transformers computes them, without
        its `encode` (its batching, sorting and module dispatch cost ~1.4 ms a call, 12% of one query's time)."""
        import torch

        features = self._model.tokenizer(
            texts, padding=True, truncation=True, max_length=self.context_length, return_tensors="pt"
        ).to(self.device)
        transformer: Any = self._model[0].auto_model
        with torch.inference_mode():
            tokens = transformer(**features).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            return _normalised((tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self._direct and len(texts) <= DIRECT_MAX_TEXTS:
            return self._direct_forward(list(texts))
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        # sentence-transformers sorts by length and pads each mini-batch to its longest text.
        vectors = self._model.encode(
            list(texts),
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        raise Unsupported(f"model {self.model_tag} ({self.family}) has no image tower", field="image")
