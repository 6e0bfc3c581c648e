"""Self-attention whose projections dynamic int8 quantization can reach (runners/encoder_model.py, `int8_text`).

PyTorch's dynamic quantization swaps `nn.Linear` layers (exactly that type) for int8 ones.
`nn.MultiheadAttention` keeps its query/key/value projection as one packed weight it multiplies itself, and its
output projection is a Linear subclass (`NonDynamicallyQuantizableLinear`) that quantization leaves alone, so in
a quantized CLIP text tower a third of the matmul work (4 of every 12 d x d multiplies per token) stayed float32
and took more of the tower's time than the int8 two thirds: py-spy on the encoder under uncached searches had the
in-projection alone at 32% of its samples, every int8 Linear together at 26%. `SelfAttention` holds
the same weights as two plain Linear layers and computes the same attention, so quantization reaches them.
Measured on ViT-B-32's text tower (random weights, 1 thread, this 2-core box), ms per query: 17.8 -> 9.3 at a
batch of 1, 12.2 -> 8.4 at 4, 8.8 -> 6.8 at 16; the float32 module gives identical vectors.
"""

from __future__ import annotations

import copy
from typing import Any, TypeGuard

import torch
import torch.nn.functional as F


class SelfAttention(torch.nn.Module):
    """`nn.MultiheadAttention(query, key, value)` where key is value is query, in either layout, in eval mode."""

    def __init__(self, attention: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        d = attention.embed_dim
        self.heads = attention.num_heads
        self.batch_first = attention.batch_first
        in_bias = attention.in_proj_bias
        self.in_proj = torch.nn.Linear(d, 3 * d, bias=in_bias is not None)
        self.in_proj.weight = torch.nn.Parameter(attention.in_proj_weight.detach().clone())
        if in_bias is not None:
            self.in_proj.bias = torch.nn.Parameter(in_bias.detach().clone())
        out = attention.out_proj
        self.out_proj = torch.nn.Linear(d, d, bias=out.bias is not None)
        self.out_proj.weight = torch.nn.Parameter(out.weight.detach().clone())
        if out.bias is not None:
            self.out_proj.bias = torch.nn.Parameter(out.bias.detach().clone())

    @staticmethod
    def replaces(attention: Any) -> TypeGuard[torch.nn.MultiheadAttention]:
        """Whether `attention` is one this module computes exactly (packed projection, no extra key/value
        bias, no zero attention, no dropout)."""
        return (
            isinstance(attention, torch.nn.MultiheadAttention)
            and attention._qkv_same_embed_dim
            and attention.bias_k is None
            and attention.bias_v is None
            and not attention.add_zero_attn
            and attention.dropout == 0.0
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query or need_weights:
            raise ValueError("SelfAttention computes self-attention only, without attention weights")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, length, width = x.shape
        q, k, v = self.in_proj(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))
        return (out if self.batch_first else out.transpose(0, 1)), None


def with_plain_projections(transformer: torch.nn.Module) -> torch.nn.Module:
    """A copy of `transformer` with every MultiheadAttention it holds that `SelfAttention` computes exactly
    replaced by one (the original is left as it is)."""
    copied = copy.deepcopy(transformer)
    found = [
        (parent, name, child)
        for parent in copied.modules()
        for name, child in parent.named_children()
        if SelfAttention.replaces(child)
    ]
    for parent, name, child in found:
        setattr(parent, name, SelfAttention(child))
    return copied
