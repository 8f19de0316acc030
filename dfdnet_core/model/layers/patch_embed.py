"""Image to patch tokens."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """A stride-p convolution: (B, 3, H, W) -> (B, H/p * W/p, C) row-major patch tokens.

    There is no normalisation after the projection. H and W must be multiples of the patch size.
    """

    def __init__(self, patch_size_px: int, embed_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.patch_size_px = patch_size_px
        self.proj = nn.Conv2d(
            in_channels, embed_dim, kernel_size=patch_size_px, stride=patch_size_px
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid: torch.Tensor = self.proj(images)
        return grid.flatten(2).transpose(1, 2)
