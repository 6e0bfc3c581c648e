"""runners/int8_attention.py: the same attention as nn.MultiheadAttention, with projections int8 can reach."""

from __future__ import annotations

import warnings

import pytest
import torch

from runners.int8_attention import SelfAttention, with_plain_projections


def causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu(1)  # as open_clip builds its text tower's


@pytest.mark.parametrize("batch_first", [True, False])
def test_it_computes_what_multihead_attention_computes(batch_first: bool) -> None:
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    replacement = SelfAttention(reference).eval()
    x = torch.randn(3, 7, 32) if batch_first else torch.randn(7, 3, 32)
    with torch.inference_mode():
        for mask in (None, causal_mask(7)):
            expected = reference(x, x, x, need_weights=False, attn_mask=mask)[0]
            got, weights = replacement(x, x, x, need_weights=False, attn_mask=mask)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            assert weights is None


def test_cross_attention_or_weights_are_refused() -> None:
    replacement = SelfAttention(torch.nn.MultiheadAttention(8, 2, batch_first=True))
    x, y = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    with pytest.raises(ValueError, match="self-attention"):
        replacement(x, y, y)
    with pytest.raises(ValueError, match="self-attention"):
        replacement(x, x, x, need_weights=True)


def test_dynamic_quantization_reaches_the_projections_and_leaves_the_original_alone() -> None:
    tower = torch.nn.Sequential(
        torch.nn.MultiheadAttention(16, 2, batch_first=True),
        torch.nn.MultiheadAttention(16, 2, batch_first=True, add_bias_kv=True),  # not one it computes exactly
    )
    plain = with_plain_projections(tower)
    assert isinstance(plain, torch.nn.Sequential)
    assert isinstance(plain[0], SelfAttention) and isinstance(plain[1], torch.nn.MultiheadAttention)
    assert isinstance(tower[0], torch.nn.MultiheadAttention)  # a copy was changed
    quantization = torch.ao.quantization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks eager quantization deprecated
        quantized = quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            plain, {torch.nn.Linear: quantization.per_channel_dynamic_qconfig}
        )
    int8_linear = torch.ao.nn.quantized.dynamic.Linear
    assert isinstance(quantized[0].in_proj, int8_linear) and isinstance(quantized[0].out_proj, int8_linear)
