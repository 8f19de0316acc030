"""Embedding of one focus distance per image, added to the tokens before stack attention."""

from __future__ import annotations

import torch
from torch import nn


class FocusDistanceEncoder(nn.Module):
    """scale * Linear(GELU(Linear(fd))): (B, N) canonical focus distances -> (B, N, C).

    ``scale`` is a learned 0-d scalar (initialised to 1).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.mlp = nn.Sequential(nn.Linear(1, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, focus_canonical: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.mlp(focus_canonical.unsqueeze(-1))
        return self.scale * embedding
