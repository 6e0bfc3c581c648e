"""Encoders and the model store, in process, with a tiny open_clip model and the real MiniLM weights.

The tiny CLIP (32-d, one layer per tower) has random weights, so its vectors mean nothing; the tests check
what does not depend on meaning: shapes, normalisation, determinism, and that the short-padding text path
equals open_clip's own 77-token path. MiniLM's real weights carry the one semantic check.

The model store is a temporary one: BentoML fixes its store at first use in a process, so the fixture swaps
BentoML's container-provided store rather than setting BENTOML_HOME.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bentoml._internal.models import ModelStore
from bentoml.container import BentoMLContainer
from PIL import Image
from typer.testing import CliRunner

from commands.model import app as model_app
from domain.errors import Unsupported
from runners.encoder_model import Encoder, load_encoder, resolve_device
from runners.int8_attention import SelfAttention
from runners.model_store import import_minilm, import_open_clip, list_encoders

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# Lengths from one token to past the 77-token context (truncated by the tokenizer).
MIXED_TEXTS = [
    "boots",
    "black leather ankle boots",
    "a red summer dress with white polka dots, short sleeves and a tie waist, in organic cotton",
    " ".join(["very long product title"] * 30),
    "",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("bentoml")
    (home / "models").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(home))
        with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
            yield home


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An open_clip config JSON and a checkpoint of random weights for it (torch.save of a state_dict)."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    torch.manual_seed(0)
    checkpoint = folder / "tiny-clip.pt"
    torch.save(open_clip.CLIP(**TINY_CONFIG).state_dict(), checkpoint)
    return config, checkpoint


@pytest.fixture(scope="module")
def tiny_tag(store: Path, tiny_files: tuple[Path, Path]) -> str:
    """The tiny model, imported through the CLI."""
    config, checkpoint = tiny_files
    result = CliRunner().invoke(
        model_app, ["import", "open-clip", "tiny-clip", "--pretrained", str(checkpoint), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture(scope="module")
def tiny(tiny_tag: str) -> Encoder:
    return load_encoder(tiny_tag, device="cpu")


@pytest.fixture(scope="module")
def minilm(store: Path) -> Encoder:
    return load_encoder(import_minilm(), device="cpu")


def reference_text_vectors(model_dir: str, texts: list[str]) -> np.ndarray:
    """open_clip's own path: every text padded to 77 tokens, `encode_text(normalize=True)`."""
    import open_clip
    import torch

    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    with torch.inference_mode():
        return model.eval().encode_text(tokenizer(texts), normalize=True).numpy()


def assert_unit_rows(vectors: np.ndarray, rows: int, dim: int) -> None:
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --- the store -----------------------------------------------------------------------------------------------


def test_import_saves_a_self_contained_entry_with_metadata(tiny_tag: str, tiny_files: tuple[Path, Path]) -> None:
    import bentoml

    model = bentoml.models.get(tiny_tag)
    assert model.tag.name == "vitrine-encoder"
    assert {path.name for path in Path(model.path).iterdir()} >= {
        "open_clip_config.json",
        "open_clip_model.safetensors",
    }
    saved = json.loads((Path(model.path) / "open_clip_config.json").read_text())
    assert saved["model_cfg"] == TINY_CONFIG
    metadata = model.info.metadata
    assert metadata["family"] == "open-clip"
    assert metadata["architecture"] == "tiny-clip"
    assert metadata["pretrained"] == str(tiny_files[1])
    assert (metadata["dim"], metadata["has_image_tower"], metadata["image_size"]) == (32, True, 32)
    assert metadata["tokenizer"] == "clip-bpe"
    assert model.info.labels == {"family": "open-clip", "architecture": "tiny-clip"}


def test_import_without_weights_is_refused_unless_random_init(store: Path, tiny_files: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(model_app, ["import", "open-clip", "tiny-clip", "--config", str(tiny_files[0])])
    assert result.exit_code == 1
    assert "--random-init" in result.stderr


def test_unknown_architecture_needs_a_config(store: Path) -> None:
    result = CliRunner().invoke(model_app, ["import", "open-clip", "no-such-arch", "--random-init"])
    assert result.exit_code == 1
    assert "--config" in result.stderr


def test_latest_is_the_model_imported_last(store: Path, tiny_files: tuple[Path, Path], tiny_tag: str) -> None:
    newest = import_open_clip("tiny-clip", pretrained=None, config_file=tiny_files[0], random_init=True)
    assert str(list_encoders()[0].tag) == str(newest.tag) != tiny_tag
    assert load_encoder(device="cpu").model_tag == str(newest.tag)  # settings: vitrine-encoder:latest
    assert newest.info.metadata["random_init"] is True


# --- open_clip -----------------------------------------------------------------------------------------------


def test_text_vectors_are_unit_length(tiny: Encoder) -> None:
    assert (tiny.family, tiny.dim, tiny.has_image_tower, tiny.device) == ("open-clip", 32, True, "cpu")
    assert_unit_rows(tiny.encode_text(MIXED_TEXTS), len(MIXED_TEXTS), 32)


def test_short_padding_equals_open_clip_77_token_path(tiny: Encoder) -> None:
    import bentoml

    assert tiny.dynamic_padding  # otherwise this test would compare the 77-token path with itself
    expected = reference_text_vectors(bentoml.models.get(tiny.model_tag).path, MIXED_TEXTS)
    np.testing.assert_allclose(tiny.encode_text(MIXED_TEXTS), expected, atol=1e-5)


def test_a_text_gets_the_same_vector_in_any_batch(tiny: Encoder) -> None:
    alone = tiny.encode_text(["boots"])
    with_longer = tiny.encode_text(MIXED_TEXTS)[0:1]
    np.testing.assert_allclose(alone, with_longer, atol=1e-5)
    np.testing.assert_array_equal(tiny.encode_text(MIXED_TEXTS), tiny.encode_text(MIXED_TEXTS))


def test_an_int8_text_tower_is_kept_when_it_agrees_with_float32(
    tiny_tag: str, tiny: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runners.encoder_model.INT8_MIN_COSINE", -1.0)  # any agreement passes the check
    int8 = load_encoder(tiny_tag, device="cpu", int8_text=True)
    assert getattr(int8, "int8_text", None) is True
    quantized, reference = int8.encode_text(MIXED_TEXTS), tiny.encode_text(MIXED_TEXTS)
    assert_unit_rows(quantized, len(MIXED_TEXTS), 32)
    assert not np.allclose(quantized, reference, atol=1e-6)  # the int8 tower really runs
    assert (quantized * reference).sum(axis=1).min() > 0.9
    # its attention's projections are int8 too (runners/int8_attention.py), not only the MLPs' Linear layers
    import torch

    attention = [module for module in int8._text.transformer.modules() if isinstance(module, SelfAttention)]  # type: ignore[attr-defined]
    assert attention, "no attention block was swapped"
    int8_linear = torch.ao.nn.quantized.dynamic.Linear
    assert all(isinstance(a.in_proj, int8_linear) and isinstance(a.out_proj, int8_linear) for a in attention)
    # the image tower is untouched
    image = Image.new("RGB", (40, 40), "red")
    np.testing.assert_allclose(int8.encode_images([image]), tiny.encode_images([image]), atol=1e-6)


def test_an_int8_text_tower_that_disagrees_is_dropped_at_load(
    tiny_tag: str, tiny: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runners.encoder_model.INT8_MIN_COSINE", 1.01)  # no agreement can pass
    fallback = load_encoder(tiny_tag, device="cpu", int8_text=True)
    assert getattr(fallback, "int8_text", None) is False
    np.testing.assert_allclose(fallback.encode_text(MIXED_TEXTS), tiny.encode_text(MIXED_TEXTS), atol=1e-6)


def test_image_vectors_are_unit_length_for_any_size_and_mode(tiny: Encoder) -> None:
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB"),
        Image.fromarray(rng.integers(0, 255, (300, 20, 4), dtype=np.uint8), "RGBA"),
        Image.new("L", (10, 10), 128),
        Image.new("P", (33, 33)),
    ]
    vectors = tiny.encode_images(images)
    assert_unit_rows(vectors, len(images), 32)
    np.testing.assert_array_equal(vectors, tiny.encode_images(images))
    np.testing.assert_allclose(tiny.encode_images(images[:1]), vectors[:1], atol=1e-5)


def test_empty_batches_give_empty_arrays(tiny: Encoder) -> None:
    assert tiny.encode_text([]).shape == (0, 32)
    assert tiny.encode_images([]).shape == (0, 32)


def test_cuda_without_a_gpu_is_an_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="cuda"):
        resolve_device("cuda")


# --- MiniLM --------------------------------------------------------------------------------------------------


def test_minilm_puts_related_products_closer(minilm: Encoder) -> None:
    heels, pumps, jacket = minilm.encode_text(["black heels", "black stiletto pumps", "blue denim jacket"])
    assert float(heels @ pumps) > float(heels @ jacket) + 0.1


def test_minilm_vectors_are_unit_length(minilm: Encoder) -> None:
    assert (minilm.family, minilm.dim, minilm.has_image_tower) == ("minilm", 384, False)
    assert_unit_rows(minilm.encode_text(MIXED_TEXTS), len(MIXED_TEXTS), 384)
    assert minilm.encode_text([]).shape == (0, 384)


def test_minilm_served_batches_skip_sentence_transformers_encode_and_give_its_vectors(minilm: Encoder) -> None:
    """A served batch runs the model and mean pooling directly (runners/encoder_model.py `_direct_forward`);
    an index build's larger batches still go through sentence-transformers, so both must give one vector per
    text. MIXED_TEXTS includes an empty text and one past the 256-token context (truncated both ways)."""
    from runners.encoder_model import DIRECT_MAX_TEXTS, MiniLMEncoder

    assert isinstance(minilm, MiniLMEncoder) and minilm._direct  # the layout was recognised and checked at load
    through_encode = minilm._encode(MIXED_TEXTS)
    np.testing.assert_allclose(minilm.encode_text(MIXED_TEXTS), through_encode, atol=1e-5)
    many = (MIXED_TEXTS * (DIRECT_MAX_TEXTS // len(MIXED_TEXTS) + 1))[: DIRECT_MAX_TEXTS + 1]  # past the limit
    np.testing.assert_allclose(minilm.encode_text(many)[: len(MIXED_TEXTS)], through_encode, atol=1e-5)


def test_minilm_has_no_image_tower(minilm: Encoder) -> None:
    with pytest.raises(Unsupported, match="no image tower"):
        minilm.encode_images([Image.new("RGB", (8, 8))])
