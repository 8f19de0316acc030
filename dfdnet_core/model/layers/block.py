"""A pre-norm ViT block with LayerScale (DINOv2 layout)."""

from __future__ import annotations

import torch
from torch import nn

from dfdnet_core.model.layers.attention import Attention
from dfdnet_core.model.layers.layer_scale import LayerScale
from dfdnet_core.model.layers.mlp import Mlp

VIT_NORM_EPS = 1e-6
"""LayerNorm epsilon of every ViT norm (blocks and the final norm)."""


class Block(nn.Module):
    """t + ls1(attn(norm1(t))), then t + ls2(mlp(norm2(t)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layer_scale_init: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=VIT_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layer_scale_init)
        self.norm2 = nn.LayerNorm(dim, eps=VIT_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale_init)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.ls1(self.attn(self.norm1(tokens)))
        update: torch.Tensor = self.ls2(self.mlp(self.norm2(tokens)))
        return tokens + update
