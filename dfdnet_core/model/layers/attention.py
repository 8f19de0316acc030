"""Multi-head self-attention over the tokens of one image (ViT)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Softmax attention; one qkv projection split [q | k | v]; scores scaled by head_dim^-0.5."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t, c = tokens.shape
        qkv = (
            self.qkv(tokens)
            .reshape(b, t, 3, self.num_heads, c // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, t, c))
        return projected
