"""DPT depth head on four ViT taps (Depth-Anything layout, no batch norm, softplus output)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfdnet_core.model.layers.feature_fusion import FeatureFusionBlock


class _Scratch(nn.Module):
    """Holder of the fusion path (checkpoint prefix ``depth_head.scratch.``)."""

    def __init__(
        self, out_channels: tuple[int, ...], features: int, hidden_channels: int, outputs: int = 1
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = out_channels
        self.layer1_rn = nn.Conv2d(c1, features, kernel_size=3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(c2, features, kernel_size=3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(c3, features, kernel_size=3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(c4, features, kernel_size=3, padding=1, bias=False)
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features)
        self.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, outputs, kernel_size=1),
            nn.Softplus(),
        )


class DPTHead(nn.Module):
    """Reassemble four token maps at 4x, 2x, 1x, 1/2x; fuse coarse to fine; predict one channel."""

    def __init__(
        self,
        in_channels: int,
        features: int,
        out_channels: tuple[int, ...],
        hidden_channels: int,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        self.projects = nn.ModuleList(
            [nn.Conv2d(in_channels, ch, kernel_size=1) for ch in out_channels]
        )
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = _Scratch(out_channels, features, hidden_channels, outputs)

    def forward(
        self,
        taps: list[torch.Tensor],
        rows: int,
        cols: int,
        patch_size_px: int,
        activation: bool = True,
    ) -> torch.Tensor:
        """Depth map from the taps.

        Args:
            taps: four (B, rows*cols, C) token maps, row-major.
            rows: patch rows h.
            cols: patch columns w.
            patch_size_px: patch side; the output is (B, outputs, rows*patch, cols*patch).
            activation: apply the final softplus (False: the raw, signed last convolution).

        Returns:
            (B, outputs, h*p, w*p) non-negative maps (softplus), or the signed maps without it.
        """
        s = self.scratch
        grids = []
        for tap, project, resize in zip(taps, self.projects, self.resize_layers, strict=True):
            grid = tap.transpose(1, 2).reshape(tap.shape[0], tap.shape[2], rows, cols)
            grids.append(resize(project(grid)))
        l1, l2, l3, l4 = (
            s.layer1_rn(grids[0]),
            s.layer2_rn(grids[1]),
            s.layer3_rn(grids[2]),
            s.layer4_rn(grids[3]),
        )
        path = s.refinenet4(l4, None, size=tuple(l3.shape[2:]))
        path = s.refinenet3(path, l3, size=tuple(l2.shape[2:]))
        path = s.refinenet2(path, l2, size=tuple(l1.shape[2:]))
        path = s.refinenet1(path, l1, size=(2 * l1.shape[2], 2 * l1.shape[3]))
        out = s.output_conv1(path)
        size = (rows * patch_size_px, cols * patch_size_px)
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        layers = s.output_conv2 if activation else s.output_conv2[:-1]
        depth: torch.Tensor = layers(out)
        return depth
