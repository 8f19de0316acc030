"""DPT refinement: residual convolution unit and feature fusion block (no batch norm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """z + conv2(relu(conv1(relu(z)))), both 3x3 with padding 1 and bias."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.conv2(F.relu(self.conv1(F.relu(z))))
        return z + update


class FeatureFusionBlock(nn.Module):
    """a (+ RCU1(skip)) -> RCU2 -> bilinear resize (align_corners=True) -> 1x1 ``out_conv``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, main: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]
    ) -> torch.Tensor:
        """Fuse ``main`` with an optional same-size ``skip``; resize to ``size`` (rows, columns)."""
        if skip is not None:
            main = main + self.resConfUnit1(skip)
        main = self.resConfUnit2(main)
        main = F.interpolate(main, size=size, mode="bilinear", align_corners=True)
        fused: torch.Tensor = self.out_conv(main)
        return fused
