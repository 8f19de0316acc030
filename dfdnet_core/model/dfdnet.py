"""DfDNet: focal stack + focus distances -> depth, and its inference contract.

``DfDNet.forward`` works in network space (normalised images, canonical focus distances, canonical
depth) and is what training and export use. ``DfDNet.infer_stack`` is the metric contract shared
with every back end: uint8 images, focus distances in metres and the camera in, depth in metres out
(see :mod:`dfdnet_core.model.canonical` for the canonical-depth convention).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import StackError
from dfdnet_core.model.backbone import StackViT
from dfdnet_core.model.canonical import depth_m_from_canonical, prepare_stack
from dfdnet_core.model.dpt import DPTHead
from dfdnet_core.model.layers.focus_encoder import FocusDistanceEncoder
from dfdnet_core.model.prior import PRIOR_CHANNELS, network_prior
from dfdnet_core.model.refiner import PriorRefiner
from dfdnet_core.model.sizes import ModelConfig, config_for_size
from dfdnet_core.model.stack_attention import StackTransformer
from dfdnet_core.optics import LensOptics, defocus_px_per_diopt


def network_input_size(
    height_px: int, width_px: int, short_side_px: int, patch_size_px: int
) -> tuple[int, int]:
    """The (rows, columns) in pixels an image is resized to inside the network.

    The short side becomes ``short_side_px``, the long side ``int(long * short_side_px / short)``
    (double precision, truncated); a square image becomes ``short_side_px`` square. Each side is
    then rounded up to a multiple of the patch size. Example (FOSSA, 518 / 14): 126x168 -> 518x700.
    """
    if height_px == width_px:
        rows = cols = short_side_px
    elif height_px < width_px:
        rows, cols = short_side_px, int(width_px * (short_side_px / height_px))
    else:
        rows, cols = int(height_px * (short_side_px / width_px)), short_side_px
    return (
        math.ceil(rows / patch_size_px) * patch_size_px,
        math.ceil(cols / patch_size_px) * patch_size_px,
    )


PRIOR_MAX_LOG_CORRECTION = 3.0
"""Bound of the log-correction of a prior model (soft, by tanh): depth stays within prior * e^(+-3)."""


class DfDNet(nn.Module):
    """ViT encoder, attention across the stack, collapse after block K, DPT head, softplus.

    Attribute names (``pretrained``, ``depth_head``) follow FOSSA's checkpoints, so ``small`` and
    ``base`` load them strictly. Output is invariant to permuting (image, focus distance) pairs
    together and works for any N >= 1. There is no dropout or batch norm, so train and eval mode
    compute the same function.
    """

    def __init__(self, config: ModelConfig | str = "tiny") -> None:
        """Build a freshly initialised model from a config or a size name of :data:`SIZES`.

        Raises:
            ConfigError: unknown size name.
        """
        super().__init__()
        self.config = config_for_size(config) if isinstance(config, str) else config
        cfg = self.config
        self.pretrained = StackViT(cfg)
        self.depth_head = DPTHead(
            cfg.embed_dim,
            cfg.dpt_features,
            cfg.dpt_out_channels,
            cfg.dpt_head_hidden_channels,
            outputs=2 if cfg.depth_prior != "none" else 1,
        )
        self.refiner = PriorRefiner(cfg.refiner_channels) if cfg.refiner_channels else None
        self.reset_parameters()

    @property
    def patch_size_px(self) -> int:
        """Patch side of the backbone in pixels."""
        return self.pretrained.patch_size_px

    def reset_parameters(self) -> None:
        """Initialise for training from scratch.

        Truncated-normal (std 0.02) linears and position table, tiny class token, zero ``proj_out``
        in every stack module (so each starts as the identity), unit focus scale; with a depth
        prior, a zero last convolution (the model starts as its prior).
        """
        focus_linears = {
            id(m)
            for enc in self.modules()
            if isinstance(enc, FocusDistanceEncoder)
            for m in enc.modules()
        }
        for module in self.modules():
            if isinstance(module, nn.Linear) and id(module) not in focus_linears:
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        vit = self.pretrained
        nn.init.trunc_normal_(vit.pos_embed, std=0.02)
        nn.init.normal_(vit.cls_token, std=1e-6)
        nn.init.zeros_(vit.mask_token)
        for module in self.modules():
            if isinstance(module, StackTransformer):
                nn.init.zeros_(module.proj_out.weight)
                nn.init.zeros_(module.proj_out.bias)
        if self.config.depth_prior != "none":  # start as the prior itself (zero log-correction)
            last = self.depth_head.scratch.output_conv2[2]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        if self.refiner is not None:
            self.refiner.reset_parameters()

    def forward(
        self,
        images: torch.Tensor,
        focus_canonical: torch.Tensor,
        prior: torch.Tensor | None = None,
        sharpness: torch.Tensor | None = None,
        defocus_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Canonical depth of B stacks.

        Args:
            images: (B, N, 3, H, W) float ImageNet-normalised RGB, N >= 1.
            focus_canonical: (B, N) canonical focus distances (metres * W / f), same order as the
                images.
            prior: (B, 2, H, W) [canonical depth > 0, confidence in [0, 1]] from
                :func:`dfdnet_core.model.prior.prior_input`; required by (only by) a model with
                ``depth_prior="classical"``.
            sharpness: (B, N, H, W) relative focus measure of each image in [0, 1]
                (:func:`dfdnet_core.model.prior.relative_sharpness`); given exactly with ``prior``.
            defocus_scale: (B,) circle-of-confusion radius in pixels per canonical dioptre of each
                stack's camera (:func:`dfdnet_core.optics.defocus_px_per_diopt` x kappa); required by
                a model with a refiner, ignored by the others.

        Returns:
            (B, 1, H, W) canonical depth >= 0 at the input resolution.

        Raises:
            StackError: wrong tensor ranks or mismatched N, or a prior missing / given / of the
                wrong shape.
        """
        if images.dim() != 5 or images.shape[2] != 3:
            raise StackError(f"images must be (B, N, 3, H, W), got shape {tuple(images.shape)!r}")
        b, n, _, height, width = images.shape
        if tuple(focus_canonical.shape) != (b, n):
            raise StackError(
                f"focus_canonical must be (B, N) = {(b, n)!r}, "
                f"got shape {tuple(focus_canonical.shape)!r}"
            )
        cfg = self.config
        uses_prior = cfg.depth_prior != "none"
        if uses_prior != (prior is not None) or uses_prior != (sharpness is not None):
            raise StackError(
                f"this model (depth_prior={cfg.depth_prior!r}) "
                + ("needs a prior and sharpness" if uses_prior else "takes no prior or sharpness")
            )
        size = network_input_size(height, width, cfg.input_short_side_px, self.patch_size_px)
        frames = images.reshape(b * n, 3, height, width)
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=True)
        if prior is not None:
            if tuple(prior.shape) != (b, PRIOR_CHANNELS, height, width):
                raise StackError(
                    f"prior must be (B, {PRIOR_CHANNELS}, H, W) = "
                    f"{(b, PRIOR_CHANNELS, height, width)!r}, got shape {tuple(prior.shape)!r}"
                )
            if sharpness is None or tuple(sharpness.shape) != (b, n, height, width):
                got = None if sharpness is None else tuple(sharpness.shape)
                raise StackError(f"sharpness must be (B, N, H, W) = {(b, n, height, width)!r}, got {got!r}")
            prior_depth = prior[:, :1].clamp_min(1e-6)
            per_image = F.interpolate(
                sharpness.reshape(b * n, 1, height, width), size=size, mode="bilinear", align_corners=True
            )
            prior_channels = self._prior_channels(prior, focus_canonical, size, n)
            frames = torch.cat((frames, prior_channels, per_image), 1)
        taps = self.pretrained(frames, focus_canonical)
        rows, cols = size[0] // self.patch_size_px, size[1] // self.patch_size_px
        if prior is None:
            depth = self.depth_head(taps, rows, cols, self.patch_size_px) * cfg.max_depth
            depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=True)
            return F.relu(depth)
        corrections = self.depth_head(taps, rows, cols, self.patch_size_px, activation=False)
        corrections = F.interpolate(
            corrections, size=(height, width), mode="bilinear", align_corners=True
        )
        # Full-resolution gate: r_fill acts where the prior is unsure, r_fix where it is confident.
        confidence = prior[:, 1:2].clamp(0.0, 1.0)
        log_correction = (1.0 - confidence) * corrections[:, :1] + confidence * corrections[:, 1:]
        bound = PRIOR_MAX_LOG_CORRECTION
        depth = prior_depth * torch.exp(bound * torch.tanh(log_correction / bound))
        if self.refiner is None:
            return depth
        if defocus_scale is None or tuple(defocus_scale.shape) != (b,):
            got = None if defocus_scale is None else tuple(defocus_scale.shape)
            raise StackError(f"this model's refiner needs defocus_scale of shape (B,) = ({b},), got {got!r}")
        assert sharpness is not None  # checked above
        refined = log_correction + self.refiner(
            images, focus_canonical, prior, depth, sharpness, defocus_scale, corrections, log_correction
        )
        return prior_depth * torch.exp(bound * torch.tanh(refined / bound))

    @staticmethod
    def _prior_channels(
        prior: torch.Tensor, focus_canonical: torch.Tensor, size: tuple[int, int], n: int
    ) -> torch.Tensor:
        """(B*N, 2, h, w) network-size prior channels, repeated for each image of the stack.

        Channel 0: log prior depth minus the mean log focus distance (the prior relative to the
        sweep, so it does not depend on the scene's scale); channel 1: the confidence.
        """
        centre = torch.log(focus_canonical.clamp_min(1e-6)).mean(dim=1).view(-1, 1, 1, 1)
        relative = torch.log(prior[:, :1].clamp_min(1e-6)) - centre
        channels = torch.cat((relative, prior[:, 1:2]), dim=1)
        channels = F.interpolate(channels, size=size, mode="bilinear", align_corners=True)
        return channels.repeat_interleave(n, dim=0)

    def infer_stack(
        self,
        images: npt.NDArray[np.uint8],
        focus_distances_m: npt.ArrayLike,
        focal_length_px: float | None = None,
        intrinsics: CameraIntrinsics | None = None,
        focus_volume: npt.NDArray[np.float32] | None = None,
        optics: LensOptics | None = None,
    ) -> npt.NDArray[np.float32]:
        """Metric depth of one focal stack (the inference contract).

        Runs on the model's device and dtype, without gradients.

        Args:
            images: (N, H, W, 3) uint8 RGB, N >= 1, any order.
            focus_distances_m: (N,) focus distance of each image in metres, same order as
                ``images``.
            focal_length_px: focal length in pixels at this resolution, or
            intrinsics: the images' :class:`CameraIntrinsics` (f = max(fx, fy)); give exactly one.
            focus_volume: for a prior model, the classical focus measure of ``images``
                (:func:`dfdnet_core.model.prior.focus_volume_of`) if the caller already has it.
            optics: the lens at the images' resolution; required by a model with a refiner (it
                reads each pixel's focus curve in pixels of blur).

        Returns:
            (H, W) float32 depth in metres along the optical axis.

        Raises:
            StackError: malformed images or focus distances, or intrinsics of another size.
            ConfigError: an invalid focal length, or not exactly one of focal_length_px /
                intrinsics.
        """
        inputs = prepare_stack(images, focus_distances_m, focal_length_px, intrinsics)
        reference = next(self.parameters())
        prior = sharpness = defocus = None
        if self.refiner is not None:
            if optics is None:
                raise StackError("this model has a refiner: infer_stack needs the lens optics (optics=...)")
            defocus = torch.tensor(
                [defocus_px_per_diopt(optics) * inputs.kappa], device=reference.device, dtype=reference.dtype
            )
        if self.config.depth_prior != "none":
            prior_np, sharpness_np = network_prior(images, focus_distances_m, inputs.kappa, focus_volume)
            prior = torch.from_numpy(prior_np[None]).to(device=reference.device, dtype=reference.dtype)
            sharpness = torch.from_numpy(sharpness_np[None]).to(
                device=reference.device, dtype=reference.dtype
            )
        with torch.inference_mode():
            x = torch.from_numpy(inputs.images).to(device=reference.device, dtype=reference.dtype)
            fd = torch.from_numpy(inputs.focus_canonical).to(
                device=reference.device, dtype=reference.dtype
            )
            canonical = self(x, fd, prior, sharpness, defocus)[0, 0].float().cpu().numpy()
        return depth_m_from_canonical(canonical, inputs.kappa)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (works on the meta device too)."""
    return sum(p.numel() for p in model.parameters())
