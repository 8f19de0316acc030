"""DINOv2-style ViT encoder with attention across the focal stack and a collapse to one stream.

Blocks 0..K run on every image of the stack (K = ``num_layers_until_collapse``); a stack-attention
module follows each of blocks 0..K-1; after block K the N streams are reduced (mean or max over the
images) and the remaining blocks run once per stack. Attribute names follow FOSSA's checkpoint keys
(prefix ``pretrained.``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfdnet_core.model.layers.block import VIT_NORM_EPS, Block
from dfdnet_core.model.layers.patch_embed import PatchEmbed
from dfdnet_core.model.prior import PRIOR_CHANNELS, SHARPNESS_CHANNELS
from dfdnet_core.model.sizes import ModelConfig
from dfdnet_core.model.stack_attention import StackAttentionModule

POS_INTERPOLATE_OFFSET = 0.1
"""Added to the patch grid size before computing the bicubic scale factors of the position table."""


class StackViT(nn.Module):
    """ViT-S/B-style encoder over a focal stack, returning four normalised taps for the DPT head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.embed_dim
        self.config = config
        self.patch_size_px = config.patch_size_px
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_grid_size**2, c))
        self.mask_token = nn.Parameter(
            torch.zeros(1, c)
        )  # kept for checkpoint compatibility; unused
        prior_channels = PRIOR_CHANNELS + SHARPNESS_CHANNELS if config.depth_prior != "none" else 0
        self.patch_embed = PatchEmbed(config.patch_size_px, c, 3 + prior_channels)
        self.blocks = nn.ModuleList(
            [
                Block(c, config.num_heads, config.mlp_ratio, config.layer_scale_init)
                for _ in range(config.depth)
            ]
        )
        self.norm = nn.LayerNorm(c, eps=VIT_NORM_EPS)
        self.motion_modules = nn.ModuleList(
            [
                StackAttentionModule(
                    c,
                    config.stack_num_heads,
                    config.stack_norm_groups,
                    config.stack_attention_layers,
                    config.focus_hidden_ratio * c,
                    config.stack_ff_ratio * c,
                )
                for _ in range(config.num_layers_until_collapse)
            ]
        )

    def interpolate_pos_encoding(self, height_px: int, width_px: int) -> torch.Tensor:
        """Position embeddings (1, 1 + h*w, C) for an image of the given size (patch multiples).

        The table is used as is only for a square image of exactly the table's grid. Otherwise the
        class slot is kept and the grid is resampled bicubically (align_corners=False, A = -0.75)
        with the scale factors ((h + 0.1) / G, (w + 0.1) / G): source coordinates follow the scale
        factor, not the size ratio.
        """
        grid = self.config.pos_grid_size
        rows, cols = height_px // self.patch_size_px, width_px // self.patch_size_px
        if rows * cols == grid * grid and height_px == width_px:
            return self.pos_embed
        c = self.pos_embed.shape[-1]
        table = self.pos_embed.float()
        patch_table = table[:, 1:].reshape(1, grid, grid, c).permute(0, 3, 1, 2)
        scale = ((rows + POS_INTERPOLATE_OFFSET) / grid, (cols + POS_INTERPOLATE_OFFSET) / grid)
        patch_table = F.interpolate(
            patch_table, scale_factor=scale, mode="bicubic", align_corners=False
        )
        patch_table = patch_table.permute(0, 2, 3, 1).reshape(1, rows * cols, c)
        return torch.cat((table[:, :1], patch_table), dim=1).to(self.pos_embed.dtype)

    def _reduce(self, tokens: torch.Tensor, stacks: int) -> torch.Tensor:
        """(B*N, T, C) -> (B, T, C) by the configured collapse over the N images."""
        per_stack = tokens.reshape(stacks, -1, *tokens.shape[1:])
        if self.config.collapse == "max":
            return per_stack.amax(dim=1)
        return per_stack.mean(dim=1)

    def forward(self, images: torch.Tensor, focus_canonical: torch.Tensor) -> list[torch.Tensor]:
        """Encode B stacks of N images.

        Args:
            images: (B*N, 3, H, W) normalised images (3 + 3 channels with a depth prior: see
                :class:`~dfdnet_core.model.dfdnet.DfDNet`), H and W multiples of the patch size, images
                of one stack in consecutive rows.
            focus_canonical: (B, N) canonical focus distance of each image.

        Returns:
            Four (B, h*w, C) patch-token taps (after the final LayerNorm, class token dropped) from
            the blocks in ``config.dpt_layers``. A tap taken before the collapse is reduced over the
            stack first.
        """
        stacks = focus_canonical.shape[0]
        height_px, width_px = images.shape[-2:]
        tokens = self.patch_embed(images)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(height_px, width_px)
        collapse_at = self.config.num_layers_until_collapse
        taps: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index < collapse_at:
                tokens = self.motion_modules[index](tokens, focus_canonical)
            elif index == collapse_at:
                tokens = self._reduce(tokens, stacks)
            if index in self.config.dpt_layers:
                taps.append(self._reduce(tokens, stacks) if index < collapse_at else tokens)
        return [self.norm(tap)[:, 1:] for tap in taps]
