"""Per-channel residual scaling (CaiT / DINOv2 LayerScale)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiplies the last dimension by a learned vector ``gamma``."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens * self.gamma
