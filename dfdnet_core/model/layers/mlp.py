"""The ViT feed-forward: Linear, exact GELU, Linear."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))) with the exact (erf) GELU."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(tokens)))
        return out
