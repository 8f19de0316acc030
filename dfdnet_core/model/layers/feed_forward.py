"""The gated (GEGLU) feed-forward of the stack-attention module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GEGLU(nn.Module):
    """One Linear to 2 x hidden, split [value | gate]; returns value * GELU(gate)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        projected: torch.Tensor = self.proj(tokens)
        value, gate = projected.chunk(2, dim=-1)
        return value * F.gelu(gate)


class GatedFeedForward(nn.Module):
    """``net`` = [GEGLU, Dropout, Linear(hidden -> dim)] (index 1 holds no parameters)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            GEGLU(dim, hidden_dim), nn.Dropout(0.0), nn.Linear(hidden_dim, dim)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(tokens)
        return out
