"""Full-resolution refinement of a prior model's log-correction (``refiner_channels > 0``).

The DPT head of a ``depth_prior="classical"`` model predicts its log-corrections on the network's grid (a 112 px
short side for ``tiny``), upsampled to the image. Much of what decides the depth of a pixel is in its own focus
curve, at the image's full resolution: which slice is sharpest and by how much. This small convolutional stage runs
at the input resolution and adds one more log-correction (natural log of a depth ratio) to the head's.

Inputs at every pixel:

* per image n: its relative focus measure s_n in [0, 1] (:func:`dfdnet_core.model.prior.relative_sharpness`), and
  where its focus distance lies in pixels of blur: ``k (1/focus_n - 1/d)``, the signed circle-of-confusion
  radius the image would have if the head's depth d were right, and ``k (1/focus_n - mean_m 1/focus_m)``, its place
  in the sweep (k: the camera's blur radius in pixels per dioptre, :func:`dfdnet_core.optics.defocus_px_per_diopt`; both
  clipped to +-16 px). Blur in pixels is what the focus measure responds to, so the same focus curve means the
  same depth for any lens, aperture and resolution. One shared 1x1 MLP maps them; mean and max over the images
  pool them, so any N works and the order of the images does not matter;
* the head's depth relative to the sweep (log depth minus the mean log focus distance), the prior's confidence,
  the head's two upsampled corrections and their confidence-gated sum (the head's depth over the prior, in log);
* the mean of the normalised images (colour, for edges and for regions that share a surface).

A stem convolution, residual dilated 3x3 convolutions (dilations 1, 2, 4, 8, 16, 1: a receptive field of 65 px)
and a 1x1 convolution that starts at zero, so a model gains a refiner without changing what it computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REFINER_DILATIONS = (1, 2, 4, 8, 16, 1)
"""Dilation of each residual 3x3 convolution of the refiner."""
BLUR_CLIP_PX = 16.0
"""Blur radii beyond +-16 px are clipped (the focus measure's 11 px window sees nothing left of the texture)."""
_SLICE_INPUTS = 3  # s_n, blur radius at the prior, place in the sweep
_PIXEL_INPUTS = 3 + 2 + 3  # mean image, head depth (relative), confidence, head corrections (2 + gated sum)


class PriorRefiner(nn.Module):
    """Full-resolution log-correction from each pixel's focus curve, its prior and the head's output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.slice_mlp = nn.Sequential(
            nn.Conv2d(_SLICE_INPUTS, channels, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, kernel_size=1),
        )
        self.stem = nn.Conv2d(2 * channels + _PIXEL_INPUTS, channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            [nn.Conv2d(channels, channels, kernel_size=3, padding=d, dilation=d) for d in REFINER_DILATIONS]
        )
        self.out = nn.Conv2d(channels, 1, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default convolution initialisation, zero output layer (the refiner starts as a no-op)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.out:
                module.reset_parameters()
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        images: torch.Tensor,
        focus_canonical: torch.Tensor,
        prior: torch.Tensor,
        depth: torch.Tensor,
        sharpness: torch.Tensor,
        defocus_scale: torch.Tensor,
        corrections: torch.Tensor,
        log_correction: torch.Tensor,
    ) -> torch.Tensor:
        """(B, 1, H, W) additional log-correction.

        Args:
            images: (B, N, 3, H, W) normalised RGB.
            focus_canonical: (B, N) canonical focus distances (same units as the prior's depth).
            prior: (B, 2, H, W) [canonical depth > 0, confidence in [0, 1]].
            depth: (B, 1, H, W) the head's canonical depth (the prior times its bounded correction).
            sharpness: (B, N, H, W) relative focus measure in [0, 1].
            defocus_scale: (B,) blur radius in pixels per canonical dioptre (1 / canonical depth unit).
            corrections: (B, 2, H, W) the head's [r_fill, r_fix] at full resolution.
            log_correction: (B, 1, H, W) their confidence-gated sum.
        """
        b, n = images.shape[:2]
        depth = depth.clamp_min(1e-6)
        log_focus = torch.log(focus_canonical.clamp_min(1e-6)).view(b, n, 1, 1)
        inv_focus = 1.0 / focus_canonical.clamp_min(1e-6)
        k = defocus_scale.view(b, 1, 1, 1)
        at_depth = (k * (inv_focus.view(b, n, 1, 1) - 1.0 / depth)).clamp(-BLUR_CLIP_PX, BLUR_CLIP_PX)
        in_sweep = (k * (inv_focus - inv_focus.mean(dim=1, keepdim=True)).view(b, n, 1, 1)).clamp(
            -BLUR_CLIP_PX, BLUR_CLIP_PX
        )
        # Channels-last throughout: the 1x1 MLP is a matmul over the last axis, the pooling over the images reads
        # contiguous rows, and the 3x3 convolutions run in channels_last (2-4x faster on CPU than NCHW here).
        per_slice = torch.stack(
            (sharpness, at_depth / BLUR_CLIP_PX, in_sweep.expand_as(sharpness) / BLUR_CLIP_PX), dim=-1
        )  # (B, N, H, W, 3)
        first, second = self.slice_mlp[0], self.slice_mlp[2]  # stored as 1x1 convolutions (checkpoint layout)
        features = F.linear(F.gelu(F.linear(per_slice, first.weight.flatten(1), first.bias)),
                            second.weight.flatten(1), second.bias)  # (B, N, H, W, C)
        pooled = torch.cat((features.mean(dim=1), features.amax(dim=1)), dim=-1)
        relative_depth = torch.log(depth) - log_focus.mean(dim=1, keepdim=True).view(b, 1, 1, 1)
        pixel = torch.cat(
            (images.mean(dim=1), relative_depth, prior[:, 1:2], corrections, log_correction), dim=1
        ).permute(0, 2, 3, 1)
        x = self.stem(torch.cat((pooled, pixel), dim=-1).permute(0, 3, 1, 2))  # channels_last strides
        for block in self.blocks:
            x = x + F.gelu(block(F.gelu(x)))
        delta: torch.Tensor = self.out(F.gelu(x))
        return delta
